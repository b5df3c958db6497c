"""Turn a source folder (the paper's ROI layout or KiTS19/21/23) into an nnU-Net raw dataset.

Python API::

    from nnunet_ppm.dataset_conversion.convert import convert_dataset
    folder = convert_dataset("synth_cts", 501, layout="roi", roi=True, test_cases=1)

writes ``$nnUNet_raw/Dataset501_KidneyTumorROI`` (imagesTr, labelsTr, and
imagesTs/labelsTs for held-out patients), dataset.json (channel "CT"; labels
background/kidney/tumor, plus cyst with ``keep_cyst``) and, with ``roi=True``,
roi_manifest.json: one ``{"roi_case", "source_case", "side", "box"}`` per
training ROI case, the box as described in :mod:`nnunet_ppm.dataset_conversion.roi`.

Held-out patients are drawn from all valid patients before anything is cut
(:func:`~nnunet_ppm.dataset_conversion.patient_splits.choose_test_patients`), so
the whole-CT and the ROI conversion of one source with one seed hold out the
same patients, and they are always written as whole CTs (CT and dataset labels
in the source CT's geometry): a held-out patient is never cut with its own
labels. Only the training patients become ROIs.

A ROI dataset also gets nnU-Net's splits_final.json, every patient's ROIs in
one fold (:mod:`~nnunet_ppm.dataset_conversion.patient_splits`), in the raw
dataset folder: nnU-Net's experiment planner (``nnUNetv2_plan_and_preprocess``,
``nnUNetv2_plan_experiment``) copies a raw dataset's splits_final.json into
``nnUNet_preprocessed/DatasetXXX_NAME``, where training reads it, and
``nnunet_ppm plan`` writes or checks it there too.

Order of work: every case's headers are checked first (nothing is written when
one fails, unless ``skip_invalid``); then each case is read, its voxels checked,
and converted into a hidden staging folder that becomes the dataset folder only
when all cases are done. Source files are only read.
"""
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

from nnunet_ppm.dataset_conversion.case_pool import run_per_case
from nnunet_ppm.dataset_conversion.image_files import read_header, read_image, write_image
from nnunet_ppm.dataset_conversion.labels import dataset_labels, to_dataset_labels
from nnunet_ppm.dataset_conversion.layouts import Layout, SourceCase, find_cases, get_layout
from nnunet_ppm.dataset_conversion.orientation import orientation_code
from nnunet_ppm.dataset_conversion.output_folder import check_target, staged_folder
from nnunet_ppm.dataset_conversion.patient_splits import (MANIFEST_NAME, SPLITS_FILE, choose_test_patients,
                                                          conflicting_splits_file, held_out_count,
                                                          patient_grouped_splits)
from nnunet_ppm.dataset_conversion.roi import (CT_PAD_VALUE, LABEL_PAD_VALUE, RoiWindow, crop_image, kidney_rois,
                                               parse_in_plane_size, parse_length)
from nnunet_ppm.dataset_conversion.validation import header_problems, reader_error, truncated_files, voxel_problems

PathLike = Union[str, Path]
FILE_ENDING = ".nii.gz"
DEFAULT_NAMES = {"roi": "KidneyTumor", "kits19": "KiTS19", "kits21": "KiTS21", "kits23": "KiTS23"}


class ConversionError(Exception):
    """Conversion refused; `problems` maps case ids to what is wrong with them."""

    def __init__(self, message: str, problems: Optional[Dict[str, List[str]]] = None):
        self.problems = problems or {}
        lines = [message] + [f"  {case}: {problem}" for case, items in sorted(self.problems.items()) for problem in items]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class CaseSettings:
    """What a worker needs to convert one case."""

    layout: Layout
    keep_cyst: bool
    window: Optional[RoiWindow]  # None: whole CTs
    keep_healthy: bool
    staging: Optional[Path]  # None: check only, write nothing
    subset: str = "Tr"  # "Tr": imagesTr/labelsTr (training), "Ts": imagesTs/labelsTs (held out)


@dataclass
class CaseResult:
    """Outcome of one case: problems (nothing written), or the nnU-Net cases written for it."""

    case_id: str
    problems: List[str] = field(default_factory=list)
    outputs: List[dict] = field(default_factory=list)  # {"case": id} or manifest entries
    notes: List[str] = field(default_factory=list)


def _ct_for_dataset(image: sitk.Image) -> sitk.Image:
    """The CT as int16 (integer HU that fit), int32, or float32 -- always signed, so -1024 padding fits."""
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        return sitk.Cast(image, sitk.sitkFloat32)
    array = sitk.GetArrayViewFromImage(image)
    fits_int16 = array.size == 0 or (array.min() >= -32768 and array.max() <= 32767)
    return sitk.Cast(image, sitk.sitkInt16 if fits_int16 else sitk.sitkInt32)


def _write_case(ct: sitk.Image, label: sitk.Image, case: str, staging: Path, subset: str) -> None:
    write_image(ct, staging / f"images{subset}" / f"{case}_0000{FILE_ENDING}")
    write_image(label, staging / f"labels{subset}" / f"{case}{FILE_ENDING}")


def convert_case(job: Tuple[SourceCase, CaseSettings]) -> CaseResult:
    """Read, check and write one source case (whole CT, or one ROI per selected kidney)."""
    case, settings = job
    result = CaseResult(case.case_id, problems=truncated_files([case.image, case.label]))
    if result.problems:
        return result
    try:
        image, label = read_image(case.image), read_image(case.label)
    except Exception as error:  # a file whose header reads but whose voxels do not (e.g. truncated)
        result.problems = [f"cannot read {case.image} or {case.label}: {reader_error(error)}"]
        return result
    result.problems = voxel_problems(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(label),
                                     settings.layout.label_values)
    if result.problems or settings.staging is None:
        return result
    ct = _ct_for_dataset(image)
    dataset_label = sitk.GetImageFromArray(to_dataset_labels(sitk.GetArrayViewFromImage(label), settings.keep_cyst))
    dataset_label.CopyInformation(ct)
    if settings.window is None:
        _write_case(ct, dataset_label, case.case_id, settings.staging, settings.subset)
        result.outputs.append({"case": case.case_id})
        return result
    rois = kidney_rois(dataset_label, settings.window, settings.keep_healthy, ct)
    for roi in rois:
        roi_case = f"{case.case_id}_{roi.side}"
        _write_case(crop_image(ct, roi.box, CT_PAD_VALUE), crop_image(dataset_label, roi.box, LABEL_PAD_VALUE),
                    roi_case, settings.staging, settings.subset)
        result.outputs.append({"roi_case": roi_case, "source_case": case.case_id, "side": roi.side,
                               "box": [list(axis) for axis in roi.box]})
        if roi.enlarged:
            result.notes.append(f"{roi.side} kidney is larger than the ROI window; its box grew to {roi.box}")
    if not rois:
        result.notes.append("no kidney with tumor, no ROI written (keep it with --keep-healthy)")
    return result


def dataset_folder(raw_dir: Optional[PathLike], dataset_id: int, name: str) -> Path:
    """nnUNet_raw/DatasetXXX_NAME, refusing an ID that another dataset already uses."""
    raw = raw_dir or os.environ.get("nnUNet_raw")
    if not raw:
        raise ValueError("nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw or pass --raw-dir")
    if not 0 < int(dataset_id) <= 9999:
        raise ValueError(f"dataset ID must be between 1 and 9999, got {dataset_id}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"dataset name {name!r} may hold only letters, digits, '_', '.', '-'")
    folder = Path(raw).resolve() / f"Dataset{int(dataset_id):03d}_{name}"
    if folder.parent.is_dir():
        others = [p.name for p in folder.parent.iterdir()
                  if p.is_dir() and p.name.startswith(f"Dataset{int(dataset_id):03d}_") and p.name != folder.name]
        if others:
            raise ValueError(f"dataset ID {dataset_id} is already used by {', '.join(others)} in {folder.parent}; "
                             f"choose another ID or remove that folder")
    return folder


def convert_dataset(src: PathLike, dataset_id: int, layout: str = "roi", *, name: Optional[str] = None,
                    raw_dir: Optional[PathLike] = None, roi: bool = False, roi_size: str = "150",
                    roi_margin: str = "10mm", keep_healthy: bool = False, keep_cyst: bool = False,
                    test_cases: int = 0, test_fraction: Optional[float] = None, split_seed: int = 0,
                    skip_invalid: bool = False, overwrite: bool = False, num_processes: int = 1,
                    progress: bool = True) -> Path:
    """Convert `src` (in `layout`: roi, kits19, kits21, kits23) into nnUNet_raw/DatasetID_NAME; returns that folder.

    roi: crop one ROI per kidney (`roi_size` in-plane, e.g. "150" voxels or "110mm"; `roi_margin` slices
    or mm above and below); only kidneys with tumor unless `keep_healthy`. keep_cyst: cysts stay a
    fourth label (kits21/kits23) instead of becoming kidney. test_cases / test_fraction: patients
    held out (drawn from all valid patients, seeded by `split_seed`) into imagesTs/labelsTs, always as
    whole CTs, also with `roi`. skip_invalid: convert the valid cases and list the rest instead of
    failing (an invalid held-out patient is then left out of the test set). Raises ConversionError
    when cases are invalid.
    """
    source_layout = get_layout(layout)
    if keep_cyst and not source_layout.has_cyst:
        raise ValueError(f"keep_cyst needs a layout with cysts (kits21, kits23); {layout} has none")
    window = RoiWindow(parse_in_plane_size(roi_size), parse_length(roi_margin)) if roi else None
    src = Path(src).resolve()
    default_name = DEFAULT_NAMES[layout] + ("ROI" if roi else "")
    folder = dataset_folder(raw_dir, dataset_id, name or default_name)
    check_target(folder, overwrite, [src])

    found = find_cases(source_layout, src)
    problems = dict(found.problems)
    checked = run_per_case(header_problems, found.cases, num_processes, "checking headers", progress)
    problems.update({case.case_id: items for case, items in zip(found.cases, checked) if items})
    valid = [case for case in found.cases if case.case_id not in problems]
    settings = CaseSettings(source_layout, keep_cyst, window, keep_healthy, None)
    if problems and not skip_invalid:  # complete the report with the voxel checks, writing nothing
        checked = run_per_case(convert_case, [(case, settings) for case in valid], num_processes, "checking voxels", progress)
        problems.update({result.case_id: result.problems for result in checked if result.problems})
        raise ConversionError(f"{len(problems)} case(s) of {src} are invalid; nothing was written "
                              f"(fix them, or pass --skip-invalid to convert the others):", problems)
    if not valid:
        raise ConversionError(f"no valid case in {src}", problems)
    held_out = choose_test_patients([case.case_id for case in valid],
                                    held_out_count(len(valid), test_cases, test_fraction), split_seed)

    with staged_folder(folder, overwrite, [src]) as staging:
        for sub in ("imagesTr", "labelsTr") + (("imagesTs", "labelsTs") if held_out else ()):
            (staging / sub).mkdir()
        settings = replace(settings, staging=staging)
        test_settings = replace(settings, window=None, subset="Ts")  # held-out patients stay whole CTs
        jobs = [(case, test_settings if case.case_id in held_out else settings) for case in valid]
        results = run_per_case(convert_case, jobs, num_processes, "converting", progress)
        problems.update({result.case_id: result.problems for result in results if result.problems})
        if problems and not skip_invalid:
            raise ConversionError(f"{len(problems)} case(s) of {src} are invalid; no dataset was written "
                                  f"(fix them, or pass --skip-invalid to convert the others):", problems)
        training = [r for r in results if r.outputs and r.case_id not in held_out]
        test_patients = sorted(r.case_id for r in results if r.outputs and r.case_id in held_out)
        if not training:
            hint = " (no kidney with tumor; keep healthy kidneys with --keep-healthy)" if roi else ""
            raise ConversionError(f"no training patient of {src} gave any case{hint}", problems)
        num_training = sum(len(r.outputs) for r in training)
        # the orientation the ROI model will see its inputs in (predict-ct brings every ROI to it)
        orientations = {orientation_code(read_header(path).direction)
                        for path in (staging / "imagesTr").glob(f"*{FILE_ENDING}")} if roi else set()
        test_set = "whole CTs (imagesTs/labelsTs in the source CTs' geometry)"
        generate_dataset_json(
            str(staging), {0: "CT"}, dataset_labels(keep_cyst), num_training, FILE_ENDING,
            dataset_name=folder.name, converted_by="nnunet_ppm convert", license=f"that of the source data ({src})",
            description=f"kidney and renal tumor, {layout} layout" + (" as per-kidney ROIs" if roi else "")
                        + (f"; held-out patients are {test_set}" if test_patients else ""),
            nnunet_ppm={"layout": layout, "source": str(src), "roi": window.describe() if window else None,
                        "roi_orientation": orientations.pop() if len(orientations) == 1 else None,
                        "keep_healthy": keep_healthy, "keep_cyst": keep_cyst, "split_seed": split_seed,
                        "test_patients": test_patients, "test_set": test_set if test_patients else None,
                        "skipped": found.skipped, "invalid": {case: items for case, items in sorted(problems.items())}})
        lines = [f"wrote {folder}: {num_training} training cases"
                 + (f" (ROIs of {len(training)} patients)" if roi else "")
                 + f", {len(test_patients)} held-out patients as whole CTs in imagesTs/labelsTs"]
        if window is not None:
            manifest = sorted((o for r in training for o in r.outputs), key=lambda o: o["roi_case"])
            (staging / MANIFEST_NAME).write_text("[\n" + ",\n".join(json.dumps(entry) for entry in manifest) + "\n]\n", encoding="utf-8")
            splits = patient_grouped_splits({o["roi_case"]: o["source_case"] for o in manifest})
            lines += [_write_patient_splits(staging, splits)] + _conflicting_preprocessed_splits(folder, splits)
    lines += [f"  skipped {case}: {why}" for case, why in sorted(found.skipped.items())]
    lines += [f"  invalid, not converted: {case}: {'; '.join(items)}" for case, items in sorted(problems.items())]
    lines += [f"  note {r.case_id}: {note}" for r in results for note in r.notes]
    print("\n".join(lines))
    return folder


def _write_patient_splits(staging: Path, splits: List[dict]) -> str:
    """splits_final.json of a ROI dataset in its raw folder (nnU-Net's planner copies it to nnUNet_preprocessed)."""
    if not splits:
        return "  cross-validation: one training patient, no splits_final.json written"
    (staging / SPLITS_FILE).write_text(json.dumps(splits, indent=4) + "\n", encoding="utf-8")
    return (f"  cross-validation: {SPLITS_FILE}, {len(splits)} folds with every patient's ROIs in one fold; "
            f"nnUNetv2_plan_and_preprocess copies it to nnUNet_preprocessed")


def _conflicting_preprocessed_splits(folder: Path, splits: List[dict]) -> List[str]:
    """A warning line when $nnUNet_preprocessed already holds another splits_final.json for this dataset
    (e.g. from an earlier conversion), which nnU-Net's planner would refuse to replace; nothing is changed there."""
    raw, preprocessed = os.environ.get("nnUNet_raw"), os.environ.get("nnUNet_preprocessed")
    if not (splits and raw and preprocessed and Path(raw).resolve() == folder.parent):
        return []
    conflict = conflicting_splits_file(Path(preprocessed) / folder.name, splits)
    if conflict is None:
        return []
    return [f"  warning: {conflict} holds another split (from an earlier dataset?); nnUNetv2_plan_and_preprocess "
            f"stops with an AssertionError until you delete it (or keep it on purpose and copy it over {SPLITS_FILE} "
            f"of {folder})"]
