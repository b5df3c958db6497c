"""The methods a leaderboard compares, and where their predictions, references and images are.

Two sources:

- cross-validation of an nnU-Net dataset (``-d ID``): every
  ``nnUNet_results/DatasetX/TRAINER__PLANS__CONFIGURATION/fold_N/validation/``
  (``fold_all`` is left out: it validates on its own training cases), compared
  with ``nnUNet_preprocessed/DatasetX/gt_segmentations`` (nnU-Net's own copy of
  the training labels; ``nnUNet_raw/DatasetX/labelsTr`` when that is absent),
  images from ``nnUNet_raw/DatasetX/imagesTr``;
- test-set prediction folders (e.g. from ``nnUNetv2_predict``) given by name,
  with a reference folder.
"""
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from nnunet_ppm.evaluation.cases import file_ending_of, find_dataset_json, list_cases

DEFAULT_NNUNET = "nnUNetTrainer__nnUNetPlans__3d_fullres"
STOCK_TRAINER = re.compile(r"nnUNetTrainer(_\w+)?$")  # nnUNetTrainer and its budget variants (_100epochs, _debug)
FOLD_FOLDER = re.compile(r"fold_(\d+)$")


@dataclass
class Method:
    """One row of the leaderboard: a name and its predicted label file per case."""

    name: str
    predictions: Dict[str, Path]
    sources: List[Path] = field(default_factory=list)


@dataclass
class DatasetLocations:
    """Where an nnU-Net dataset's results, reference labels, images and dataset.json are."""

    name: str
    results: Path
    references: Path
    images: Optional[Path]
    dataset_json: Optional[Path]


def dataset_locations(dataset_name_or_id: str) -> DatasetLocations:
    """Resolve ``-d`` (id or DatasetXXX_Name) with nnU-Net's environment variables."""
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw, nnUNet_results
    from nnunet_ppm.dataset_names import dataset_name

    name = dataset_name(dataset_name_or_id)
    raw = Path(nnUNet_raw.get()) / name if nnUNet_raw.is_set() else None
    preprocessed = Path(nnUNet_preprocessed.get()) / name if nnUNet_preprocessed.is_set() else None
    candidates = [p for p in (preprocessed and preprocessed / "gt_segmentations", raw and raw / "labelsTr") if p]
    references = next((p for p in candidates if p.is_dir()), None)
    if references is None:
        raise FileNotFoundError(f"{name}: no reference labels found (looked in {[str(p) for p in candidates]}); "
                                f"set nnUNet_preprocessed / nnUNet_raw")
    images = raw / "imagesTr" if raw and (raw / "imagesTr").is_dir() else None
    json_candidates = [p / "dataset.json" for p in (preprocessed, raw) if p]
    return DatasetLocations(name=name, results=Path(nnUNet_results.require()) / name, references=references,
                            images=images, dataset_json=find_dataset_json(*json_candidates))


def cross_validation_methods(dataset_results: Path, folds: Optional[Sequence[int]] = None
                             ) -> Tuple[List[Method], List[str]]:
    """Methods from the ``fold_N/validation`` folders of every ``TRAINER__PLANS__CONFIGURATION`` folder.

    Returns the methods that have predictions, and notes about folders that were left out.
    A case predicted by two folds (different splits mixed) is an error naming the case.
    """
    if not dataset_results.is_dir():
        raise FileNotFoundError(f"{dataset_results} does not exist: nothing trained for this dataset yet")
    methods, notes = [], []
    for model_folder in sorted(p for p in dataset_results.iterdir() if p.is_dir() and len(p.name.split("__")) == 3):
        if not (model_folder / "dataset.json").is_file():
            notes.append(f"{model_folder.name}: no dataset.json (nnUNetv2_train writes one), left out")
            continue
        file_ending = file_ending_of(model_folder, model_folder / "dataset.json")
        method = Method(model_folder.name, {})
        for fold_folder in sorted(model_folder.iterdir()):
            fold = FOLD_FOLDER.match(fold_folder.name)
            validation = fold_folder / "validation"
            if not fold or (folds is not None and int(fold.group(1)) not in folds):
                continue
            if not validation.is_dir():
                notes.append(f"{model_folder.name}/{fold_folder.name}: no validation folder (training unfinished?)")
                continue
            for case_id, path in list_cases(validation, file_ending).items():
                if case_id in method.predictions:
                    raise ValueError(f"{model_folder.name}: case {case_id} is predicted in both "
                                     f"{method.predictions[case_id].parent} and {validation}")
                method.predictions[case_id] = path
            method.sources.append(validation)
        if method.predictions:
            methods.append(method)
        else:
            notes.append(f"{model_folder.name}: no validation predictions, left out")
    return methods, notes


def folder_methods(named_folders: Sequence[Tuple[str, Path]], file_ending: str) -> List[Method]:
    """Methods from prediction folders given as (name, folder)."""
    names = [name for name, _ in named_folders]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"method names must be unique, got {duplicates} more than once (use NAME=FOLDER)")
    methods = [Method(name, list_cases(folder, file_ending), [folder]) for name, folder in named_folders]
    empty = [f"{m.name} ({m.sources[0]})" for m in methods if not m.predictions]
    if empty:
        raise ValueError(f"no {file_ending} predictions in: {', '.join(empty)}")
    return methods


def default_reference(names: Sequence[str]) -> Optional[str]:
    """Default nnU-Net among ``names``: ``nnUNetTrainer__nnUNetPlans__3d_fullres``, else the one stock-trainer
    variant on nnUNetPlans 3d_fullres (e.g. ``nnUNetTrainer_100epochs__nnUNetPlans__3d_fullres``); None when
    there is none or more than one."""
    if DEFAULT_NNUNET in names:
        return DEFAULT_NNUNET
    stock = [name for name in names if len(name.split("__")) == 3 and STOCK_TRAINER.match(name.split("__")[0])
             and name.split("__")[1:] == ["nnUNetPlans", "3d_fullres"]]
    return stock[0] if len(stock) == 1 else None


def display_names(names: Sequence[str]) -> Dict[str, str]:
    """Short names for tables. TRAINER__PLANS__CONFIGURATION identifiers keep the trainer plus the fewest
    further parts that tell the methods apart; other names stay as they are."""
    parts = [name.split("__") for name in names]
    if not parts or any(len(p) != 3 for p in parts):
        return {name: name for name in names}
    for kept in ((0,), (0, 1), (0, 2), (0, 1, 2)):
        short = ["__".join(p[i] for i in kept) for p in parts]
        if len(set(short)) == len(short):
            return dict(zip(names, short))
    raise ValueError(f"method names are not unique: {list(names)}")
