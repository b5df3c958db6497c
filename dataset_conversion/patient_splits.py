"""Splits by patient: the held-out test patients, and nnU-Net's cross-validation grouped by patient.

**Held-out patients** (:func:`choose_test_patients`) are drawn, seeded, from all
valid patients of a source before anything is converted, so the whole-CT and
the ROI conversion of one source with the same seed hold out the same patients.

**Cross-validation.** nnU-Net splits a dataset into folds by case
(``generate_crossval_split``: scikit-learn KFold, 5 folds, shuffled with seed
12345, over the sorted case ids) unless ``nnUNet_preprocessed/DatasetXXX/
splits_final.json`` exists. A ROI dataset has one case per kidney, so that
split can train on one kidney of a patient and validate on the other.
:func:`patient_grouped_splits` runs that same function over the sorted
*patients* and gives each fold the cases of its patients: with one case per patient
(case id = patient id) it is exactly nnU-Net's own split. Folds: 5, or as many
as there are training patients when fewer (at least 2; with one training
patient there is nothing to cross-validate and no split is written).

``convert --roi`` writes that split as splits_final.json into the raw dataset
folder; nnU-Net's experiment planner copies a raw dataset's splits_final.json
into nnUNet_preprocessed (and refuses to plan when a different one is already
there). :func:`install_splits` (run by ``nnunet_ppm plan``) writes it into
nnUNet_preprocessed when missing and never replaces an existing one: a
different split of the same cases is kept (a user's own split) with a warning
that says whether it keeps patients whole; a file that does not list exactly
the training cases (left from an earlier dataset) raises StaleSplitsError.
"""
import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Set, Union

import numpy as np
from nnunetv2.utilities.crossval_split import generate_crossval_split

from nnunet_ppm.atomic_io import write_text_atomic

PathLike = Union[str, Path]
Split = Dict[str, List[str]]  # one fold: {"train": [...], "val": [...]}, nnU-Net's splits_final.json entries

SPLITS_FILE = "splits_final.json"
MANIFEST_NAME = "roi_manifest.json"
NUM_FOLDS = 5  # nnU-Net's default
CROSSVAL_SEED = 12345  # the seed of nnU-Net's generate_crossval_split


def held_out_count(num_patients: int, test_cases: int = 0, test_fraction: Optional[float] = None) -> int:
    """How many of `num_patients` to hold out: `test_cases`, or `test_fraction` of them rounded; one must stay."""
    if test_fraction is not None:
        if test_cases:
            raise ValueError("give either test_cases or test_fraction, not both")
        if not 0 <= test_fraction < 1:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        test_cases = int(round(test_fraction * num_patients))
    if test_cases < 0 or test_cases >= num_patients:
        raise ValueError(f"cannot hold out {test_cases} of {num_patients} valid patients for testing: "
                         f"at least one must stay for training")
    return test_cases


def choose_test_patients(patient_ids: Sequence[str], count: int, seed: int) -> Set[str]:
    """`count` of `patient_ids` picked at random (seeded by `seed`; independent of the input order)."""
    ordered = sorted(patient_ids)
    picks = np.random.default_rng(seed).permutation(len(ordered))[:count]
    return {ordered[i] for i in picks}


def patient_grouped_splits(case_patients: Mapping[str, str], num_folds: int = NUM_FOLDS,
                           seed: int = CROSSVAL_SEED) -> List[Split]:
    """nnU-Net's own cross-validation split (generate_crossval_split) made over patients, then each patient
    replaced by its cases: every patient's cases sit in the validation set of one fold.

    `case_patients` maps each training case to its patient. Returns splits_final.json's list
    ({"train": sorted cases, "val": sorted cases} per fold); min(num_folds, patients) folds,
    none when there are fewer than two patients.
    """
    patients = sorted(set(case_patients.values()))
    if len(patients) < 2:
        return []
    cases_of = {patient: sorted(c for c, p in case_patients.items() if p == patient) for patient in patients}
    folds = generate_crossval_split(patients, seed=seed, n_splits=min(num_folds, len(patients)))
    return [{part: sorted(c for patient in fold[part] for c in cases_of[patient]) for part in ("train", "val")}
            for fold in folds]


def split_problems(splits: Sequence[Mapping[str, Sequence[str]]], case_patients: Mapping[str, str]) -> List[str]:
    """What is wrong with `splits` for the training cases of `case_patients`, one line each (empty: a sound
    patient-grouped cross-validation): unknown or missing cases, cases validated in no or several folds,
    patients with cases on both sides of a fold."""
    problems = []
    listed = {case for split in splits for part in ("train", "val") for case in split.get(part, [])}
    unknown, missing = sorted(listed - set(case_patients)), sorted(set(case_patients) - listed)
    if unknown:
        problems.append(f"names {len(unknown)} case(s) that are not training cases of this dataset "
                        f"(e.g. {', '.join(unknown[:3])}): it is left from an earlier dataset")
    if missing:
        problems.append(f"misses {len(missing)} training case(s) (e.g. {', '.join(missing[:3])})")
    val_folds: Dict[str, List[int]] = {}
    for fold, split in enumerate(splits):
        for case in split.get("val", []):
            val_folds.setdefault(case, []).append(fold)
        train_patients = {case_patients.get(c, c) for c in split.get("train", [])}
        shared = sorted(train_patients & {case_patients.get(c, c) for c in split.get("val", [])})
        if shared:
            problems.append(f"fold {fold} trains and validates on the same patient(s): {', '.join(shared[:5])}"
                            + (f" and {len(shared) - 5} more" if len(shared) > 5 else ""))
    not_once = sorted(c for c in case_patients if len(val_folds.get(c, [])) != 1 and c in listed)
    if not_once:
        problems.append(f"{len(not_once)} training case(s) are validated in no fold or in several "
                        f"(e.g. {', '.join(not_once[:3])})")
    return problems


def manifest_patients(raw_dataset: PathLike) -> Optional[Dict[str, str]]:
    """{ROI case: patient} from a raw dataset's roi_manifest.json, or None for a dataset without one (whole CTs)."""
    manifest = Path(raw_dataset) / MANIFEST_NAME
    if not manifest.is_file():
        return None
    return {entry["roi_case"]: entry["source_case"] for entry in json.loads(manifest.read_text(encoding="utf-8"))}


def _normalised(splits: Sequence[Mapping[str, Sequence[str]]]) -> List[tuple]:
    return [(sorted(split["train"]), sorted(split["val"])) for split in splits]


def conflicting_splits_file(preprocessed_dataset: PathLike,
                            splits: Sequence[Mapping[str, Sequence[str]]]) -> Optional[Path]:
    """The splits_final.json of `preprocessed_dataset` if there is one that is not `splits` (unreadable counts as
    different): nnU-Net's planner then refuses to copy a raw dataset's splits_final.json over it."""
    path = Path(preprocessed_dataset) / SPLITS_FILE
    if not path.is_file():
        return None
    try:
        return None if _normalised(json.loads(path.read_text(encoding="utf-8"))) == _normalised(splits) else path
    except (ValueError, KeyError, TypeError):
        return path


class StaleSplitsError(ValueError):
    """An existing splits_final.json does not list exactly the training cases (left from an earlier dataset)."""


def install_splits(preprocessed_dataset: PathLike, case_patients: Mapping[str, str]) -> str:
    """Write the patient-grouped splits_final.json into `preprocessed_dataset` (nnUNet_preprocessed/DatasetXXX_NAME)
    unless it already holds one; returns one line saying what was done.

    An existing file that splits the same cases differently (a user's own split) is kept; the line then
    starts with "warning:" and says whether that split keeps patients whole. An existing file that
    does not list exactly the training cases is kept too, and StaleSplitsError says how to replace it.
    """
    path = Path(preprocessed_dataset) / SPLITS_FILE
    splits = patient_grouped_splits(case_patients)
    num_patients = len(set(case_patients.values()))
    if not splits:
        return f"no cross-validation split written: {num_patients} training patient(s), at least 2 are needed"
    if not path.exists():
        write_text_atomic(path, json.dumps(splits, indent=4) + "\n")
        return (f"wrote {path}: {len(splits)} folds grouped by patient ({len(case_patients)} cases of "
                f"{num_patients} patients; nnU-Net's KFold, seed {CROSSVAL_SEED}, over patients)")
    replace_hint = "delete it and run `nnunet_ppm plan` again to use the patient-grouped split"
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
        same = _normalised(existing) == _normalised(splits)
    except (ValueError, KeyError, TypeError) as error:  # not a list of {"train", "val"} objects
        raise StaleSplitsError(f"{path} is not nnU-Net's list of {{'train': [...], 'val': [...]}} ({error}); "
                               f"{replace_hint}") from error
    if same:
        return f"{path} already holds the patient-grouped split"
    listed = {case for split in existing for case in split["train"] + split["val"]}
    if listed != set(case_patients):
        raise StaleSplitsError(f"{path} (kept) {'; '.join(split_problems(existing, case_patients))}; {replace_hint}")
    problems = split_problems(existing, case_patients)
    verdict = "; ".join(problems) if problems else "it is another split that keeps every patient in one fold"
    return (f"warning: kept the existing {path}, which differs from the patient-grouped split: {verdict}. "
            f"To change: {replace_hint}.")
