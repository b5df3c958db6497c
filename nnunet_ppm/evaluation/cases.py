"""Finding and reading the label maps of an evaluation: cases, files, geometry checks."""
import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from nnunet_ppm.evaluation.metrics import mask_of

SUPPORTED_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha")
SPACING_TOLERANCE_MM = 1e-4
ORIGIN_TOLERANCE_MM = 1e-3
DIRECTION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class CasePair:
    """One case to evaluate: its id, reference label file and predicted label file."""

    case_id: str
    reference: Path
    prediction: Path


@dataclass(frozen=True)
class LabelVolume:
    """A label map as a numpy array in SimpleITK order (z, y, x) with its geometry (spacing in the same order)."""

    array: np.ndarray
    spacing: Tuple[float, ...]
    origin: Tuple[float, ...]
    direction: Tuple[float, ...]


def read_label_volume(path: Path) -> LabelVolume:
    """Read a label map with SimpleITK; the spacing is reversed to the array's axis order."""
    image = sitk.ReadImage(str(path))
    return LabelVolume(array=sitk.GetArrayFromImage(image), spacing=tuple(reversed(image.GetSpacing())),
                       origin=image.GetOrigin(), direction=image.GetDirection())


def check_same_geometry(case_id: str, reference: LabelVolume, prediction: LabelVolume) -> None:
    """Raise ValueError naming the case when the prediction's grid differs from the reference's."""
    problems = []
    if reference.array.shape != prediction.array.shape:
        problems.append(f"shape {prediction.array.shape} instead of {reference.array.shape}")
    else:
        if not np.allclose(reference.spacing, prediction.spacing, rtol=0, atol=SPACING_TOLERANCE_MM):
            problems.append(f"spacing {prediction.spacing} instead of {reference.spacing}")
        if not np.allclose(reference.origin, prediction.origin, rtol=0, atol=ORIGIN_TOLERANCE_MM):
            problems.append(f"origin {prediction.origin} instead of {reference.origin}")
        if not np.allclose(reference.direction, prediction.direction, rtol=0, atol=DIRECTION_TOLERANCE):
            problems.append(f"direction {prediction.direction} instead of {reference.direction}")
    if problems:
        raise ValueError(f"case {case_id}: prediction does not lie on the reference's voxel grid: "
                         + "; ".join(problems) + " (shape/spacing in array order z, y, x)")


def check_label_values(case_id: str, which: str, array: np.ndarray, allowed: Iterable[int]) -> None:
    """Raise ValueError naming the case when a label map holds values outside ``allowed``."""
    allowed = sorted(allowed)
    unexpected_voxels = ~mask_of(array, allowed)
    if unexpected_voxels.any():
        unexpected = np.unique(array[unexpected_voxels]).tolist()
        raise ValueError(f"case {case_id}: {which} holds label values {unexpected}, expected only {allowed} "
                         f"(pass the dataset.json that defines them with --dataset-json)")


def file_ending_of(folder: Path, dataset_json: Optional[Path]) -> str:
    """The label files' ending: dataset.json's ``file_ending``, else the one supported ending found in ``folder``."""
    if dataset_json is not None:
        with open(dataset_json, encoding="utf-8") as handle:
            ending = json.load(handle).get("file_ending")
        if ending:
            return ending
    found = {_supported_ending(path.name) for path in folder.iterdir() if path.is_file()} - {None}
    if len(found) != 1:
        raise ValueError(f"{folder}: expected label files with one of the endings {SUPPORTED_ENDINGS}, found "
                         f"{sorted(found) or 'none'}; pass a dataset.json with 'file_ending'")
    return found.pop()


def _supported_ending(name: str) -> Optional[str]:
    return next((ending for ending in SUPPORTED_ENDINGS if name.endswith(ending)), None)


def list_cases(folder: Path, file_ending: str) -> Dict[str, Path]:
    """case id -> file, for every file in ``folder`` that ends with ``file_ending``."""
    return {path.name[:-len(file_ending)]: path for path in sorted(folder.iterdir())
            if path.is_file() and path.name.endswith(file_ending)}


def pair_cases(reference_folder: Path, prediction_files: Dict[str, Path], file_ending: str) -> List[CasePair]:
    """Pair every prediction with its reference; a prediction without reference is an error naming the cases."""
    references = list_cases(reference_folder, file_ending)
    orphans = sorted(set(prediction_files) - set(references))
    if orphans:
        raise ValueError(f"{len(orphans)} prediction(s) have no reference {file_ending} file in {reference_folder}: "
                         f"{', '.join(orphans[:10])}{' ...' if len(orphans) > 10 else ''}")
    return [CasePair(case_id, references[case_id], path) for case_id, path in sorted(prediction_files.items())]


def find_dataset_json(*candidates: Path) -> Optional[Path]:
    """The first of ``candidates`` that is an existing file, else None."""
    return next((path for path in candidates if path.is_file()), None)


def named_folder(text: str) -> Tuple[str, Path]:
    """argparse type for ``NAME=FOLDER`` or ``FOLDER`` (then NAME is the folder's name)."""
    name, separator, folder = text.partition("=")
    if not separator:
        name, folder = Path(text).name, text
    if not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER or FOLDER, got {text!r}")
    return name, Path(folder)
