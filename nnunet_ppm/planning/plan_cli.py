"""`nnunet_ppm plan -d ID`: write nnUNetPPMPlans.json beside nnUNetPlans.json and preprocess the dataset with it.

For a dataset of per-kidney ROIs (one with roi_manifest.json) it also writes, or checks, nnU-Net's
splits_final.json so that cross-validation keeps every patient's ROIs in one fold
(:mod:`nnunet_ppm.dataset_conversion.patient_splits`).
"""
import argparse
import json
import os
from pathlib import Path
from typing import Optional, Sequence

from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

from nnunet_ppm.dataset_conversion.patient_splits import StaleSplitsError, install_splits, manifest_patients
from nnunet_ppm.dataset_names import DatasetNotFoundError, dataset_name as find_dataset_name
from nnunet_ppm.planning.intensity import HU_WINDOW, mean_scaled_intensity
from nnunet_ppm.planning.ppm_plans import (BATCH_SIZE, CONFIGURATION, PLANS_NAME, PlanningError, build_ppm_plans,
                                           total_stride)


def _write_json_atomically(obj: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=4), encoding="utf-8")
    os.replace(tmp, path)


def _install_patient_splits(raw: Path, preprocessed: Path, training_cases: Sequence[str]) -> None:
    """ROI datasets: the patient-grouped splits_final.json (written, or an existing one checked); whole CTs: nothing."""
    patients = manifest_patients(raw)
    if patients is None:
        return
    unknown = [case for case in training_cases if case not in patients]
    if unknown:
        raise PlanningError(f"{raw}: training case(s) {', '.join(unknown[:5])} are not in roi_manifest.json, so their "
                            f"patient is unknown; convert the dataset again with `nnunet_ppm convert ... --roi`")
    try:
        print(install_splits(preprocessed, {case: patients[case] for case in training_cases}))
    except StaleSplitsError as error:
        raise PlanningError(str(error)) from error


def plan_dataset(dataset: str, patch_size: Optional[Sequence[int]] = None, batch_size: int = BATCH_SIZE,
                 preprocess: bool = True, num_processes: int = 2) -> Path:
    """Write nnUNetPPMPlans.json for a dataset that nnU-Net has planned; preprocess it unless told not to.

    For ROI datasets, also writes (or checks) the patient-grouped splits_final.json first.
    Returns the path of the plans file. Raises PlanningError with what to do when the dataset is not ready.
    """
    dataset_name = find_dataset_name(dataset)
    preprocessed = Path(nnUNet_preprocessed) / dataset_name
    nnunet_plans_file = preprocessed / "nnUNetPlans.json"
    for needed in (preprocessed / "dataset_fingerprint.json", nnunet_plans_file):
        if not needed.is_file():
            raise PlanningError(f"{dataset_name}: {needed} not found. nnUNetPPMPlans is derived from nnU-Net's own "
                                f"fingerprint and plans: run `nnUNetv2_plan_and_preprocess -d {dataset} "
                                f"-c {CONFIGURATION}` (or nnUNetv2_extract_fingerprint + nnUNetv2_plan_experiment) first")
    nnunet_plans = json.loads(nnunet_plans_file.read_text(encoding="utf-8"))
    dataset_json = json.loads((preprocessed / "dataset.json").read_text(encoding="utf-8"))

    cases = get_filenames_of_train_images_and_targets(str(Path(nnUNet_raw) / dataset_name), dataset_json)
    _install_patient_splits(Path(nnUNet_raw) / dataset_name, preprocessed, sorted(cases))
    reader_writer_class = PlansManager(nnunet_plans).image_reader_writer_class
    schemes = nnunet_plans["configurations"].get(CONFIGURATION, {}).get("normalization_schemes", [])
    means = {c: mean_scaled_intensity([case["images"][c] for case in cases.values()], reader_writer_class,
                                      channel=c, num_processes=num_processes)
             for c, scheme in enumerate(schemes) if scheme == "CTNormalization"}

    plans = build_ppm_plans(nnunet_plans, means, patch_size=patch_size, batch_size=batch_size)
    plans_file = preprocessed / f"{PLANS_NAME}.json"
    _write_json_atomically(plans, plans_file)

    configuration = plans["configurations"][CONFIGURATION]
    strides = configuration["architecture"]["arch_kwargs"]["strides"]
    print(f"{plans_file}: patch {configuration['patch_size']} (total stride {total_stride(strides)}), "
          f"batch {configuration['batch_size']}, spacing {configuration['spacing']}, HU window {list(HU_WINDOW)} "
          f"scaled to [0, 1] minus training mean {', '.join(f'{m:.4f} (channel {c})' for c, m in means.items())}")
    if preprocess:
        from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess as nnunet_preprocess
        nnunet_preprocess([int(dataset_name[7:10])], PLANS_NAME, [CONFIGURATION], [num_processes])
    return plans_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name (already planned by nnU-Net)")
    parser.add_argument("--patch", type=int, nargs=3, metavar=("Z", "Y", "X"),
                        help="patch size in voxels, slice axis first (default: 64 slices, in-plane from the data)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"default {BATCH_SIZE}, the paper's")
    parser.add_argument("--no-preprocess", action="store_true", help="only write nnUNetPPMPlans.json")
    parser.add_argument("-np", "--num-processes", type=int, default=2, help="worker processes (default 2)")
    parser.epilog = ("ROI datasets (convert --roi): also writes nnU-Net's splits_final.json with every patient's ROIs "
                     "in one fold (an existing file is kept; a warning says if it differs). "
                     f"Then: nnUNetv2_train ID {CONFIGURATION} FOLD -tr PPMTrainer -p {PLANS_NAME}")


def run(args: argparse.Namespace) -> int:
    try:
        plan_dataset(args.dataset, args.patch, args.batch_size, not args.no_preprocess, args.num_processes)
    except (PlanningError, DatasetNotFoundError) as error:
        print(f"nnunet_ppm plan: {error}")
        return 1
    return 0
