"""Benchmark 3: seconds per case of `nnunet_ppm predict` (network, CRF, component) next to `nnUNetv2_predict`.

    python benchmarks/inference.py                      # CPU: a ROI (full preset) and a small-preset whole CT
    python benchmarks/inference.py --device cuda --ct-preset full --mirroring off on --record   # GPU (see gpu/)

Synthetic patients are converted into two datasets, per-kidney ROIs (the
paper's data) and whole CTs, each planned by nnU-Net and by `nnunet_ppm plan`
(nnunet_ppm.experiment's steps). For one ROI (a training case: held-out
patients are whole CTs, and untrained networks take as long on any ROI) and
one held-out whole CT, both methods' predictions are timed step by step, in
this process, with the functions the two commands run:

* default nnU-Net (`nnUNetv2_predict`: nnUNetPlans 3d_fullres, nnU-Net's
  U-Net): preprocessing (read, crop, resample, normalise), network (sliding
  window, Gaussian weighting), export (resample to the image, argmax, write);
* PPM (`nnunet_ppm predict`: nnUNetPPMPlans, 3D_FCN_PPM): the same
  preprocessing and network, export of the probabilities (resampling) and the
  write, dense CRF (torch backend), largest component (``largest`` on the ROI,
  ``per-side`` on the whole CT).

The networks are built from the plans by their trainers and not trained
(nnUNetPredictor.manual_initialization): their time does not depend on the
weights. The CRF's does (it runs around the predicted foreground), so CRF and
component get network-like probabilities made from the case's reference
labels (postprocessing_speed.imitated_probabilities), as a trained network
would give them. Process start-up (about 10 s per command) is not counted.
Mirroring is the same for both methods: "off" (``--disable_tta``) or "on"
(nnU-Net's default, all three axes).
"""
import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Dict

import numpy as np
import SimpleITK as sitk
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.inference.export_prediction import (convert_predicted_logits_to_segmentation_with_correct_shape,
                                                  export_prediction_from_logits)
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_ppm.experiment import Experiment, StepRunner, nnunet_environment
from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_ppm.postprocessing.dense_crf import dense_crf
from nnunet_ppm.postprocessing.nnunet_pp_pkl import component_rule
from nnunet_ppm.postprocessing.pipeline import PostprocessingSettings, lr_axis_for
from nnunet_ppm.training.ppm_trainer import PPMTrainer
from postprocessing_speed import imitated_probabilities
from results import Table

DEFAULT, PPM = "nnU-Net default (nnUNetv2_predict)", "PPM (nnunet_ppm predict)"
METHODS = {DEFAULT: (nnUNetTrainer, "nnUNetPlans"), PPM: (PPMTrainer, "nnUNetPPMPlans")}
STEPS = ("preprocessing", "network", "export", "CRF", "component")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def untrained_predictor(trainer_class, preprocessed: Path, plans: str, dataset_json: dict, device: torch.device,
                        mirroring: bool) -> nnUNetPredictor:
    """nnU-Net's predictor around the network ``trainer_class`` builds from ``plans`` (untrained weights)."""
    plans_manager = PlansManager(load_json(str(preprocessed / f"{plans}.json")))
    configuration = plans_manager.get_configuration("3d_fullres")
    heads = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    torch.manual_seed(0)
    network = trainer_class.build_network_architecture(plans_manager, configuration, 1, heads, False)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                                perform_everything_on_device=True, device=device, allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration, [network.state_dict()], dataset_json,
                                    trainer_class.__name__, (0, 1, 2))
    return predictor


def time_case(predictor: nnUNetPredictor, image_file: Path, reference_file: Path, out_file: Path, is_ppm: bool,
              lcc_mode: str, device: torch.device) -> Dict[str, float]:
    """Seconds of each step of one case's prediction, and the voxels the network saw."""
    seconds, clock = {}, time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        _synchronize(device)
        now = time.perf_counter()
        seconds[step] = seconds.get(step, 0.0) + now - clock
        clock = now

    plans_manager, configuration = predictor.plans_manager, predictor.configuration_manager
    preprocessor = configuration.preprocessor_class(verbose=False)
    data, _, properties = preprocessor.run_case([str(image_file)], None, plans_manager, configuration,
                                                predictor.dataset_json)
    lap("preprocessing")
    logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
    lap("network")
    if not is_ppm:
        export_prediction_from_logits(logits, properties, configuration, plans_manager, predictor.dataset_json,
                                      str(out_file), save_probabilities=False)
        lap("export")
        return {**seconds, "network voxels": int(np.prod(data.shape[1:]))}
    convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, plans_manager, configuration, predictor.label_manager, properties, return_probabilities=True)
    lap("export")
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(reference_file))).astype(np.uint8)
    probabilities = imitated_probabilities(reference, properties["spacing"], seed=0)
    clock = time.perf_counter()
    image = plans_manager.image_reader_writer_class().read_images([str(image_file)])[0][0]
    labels = dense_crf(probabilities, image, properties["spacing"], CRFParams(), backend="torch")
    lap("CRF")
    settings = PostprocessingSettings(lcc_mode=lcc_mode)
    function, kwargs = component_rule(lcc_mode, lr_axis_for(out_file.name, properties, settings))
    labels = function(labels, **kwargs)
    lap("component")
    plans_manager.image_reader_writer_class().write_seg(labels, str(out_file) + ".nii.gz", properties)
    lap("export")
    return {**seconds, "network voxels": int(np.prod(data.shape[1:]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--roi-preset", default="full", help="synthetic preset the ROIs are cut from (default full)")
    parser.add_argument("--ct-preset", default="small", help="synthetic preset of the whole CTs (default small; "
                                                             "full: 512 x 512, slow on a CPU)")
    parser.add_argument("--cases", type=int, default=4, help="synthetic patients per preset, one held out")
    parser.add_argument("--mirroring", nargs="+", default=["off"], choices=("off", "on"))
    parser.add_argument("--work", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()

    device = torch.device(args.device)
    table = Table(["case", "image voxels", "method", "mirroring", "network voxels", *[f"{s} s" for s in STEPS],
                   "total s", "network s per Mvoxel", "default / PPM total"])
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        env = nnunet_environment(work, own_folders=True)
        experiment = Experiment(work, env, StepRunner(work, env, total=2 * 4), processes=min(os.cpu_count() or 1, 8))
        for kind, dataset_id, preset, roi_size, lcc_mode in (("ROI", 972, args.roi_preset, "150", "largest"),
                                                             ("whole CT", 973, args.ct_preset, None, "per-side")):
            raw = experiment.convert(experiment.generate(args.cases, 0, preset), "roi", dataset_id, 1, roi_size)
            experiment.plan_nnunet(raw)
            experiment.plan_ppm(raw, 4, None)
            preprocessed = Path(env["nnUNet_preprocessed"]) / raw.name
            dataset_json = load_json(str(raw / "dataset.json"))
            subset = "Tr" if roi_size else "Ts"  # a ROI dataset's held-out patients are whole CTs
            image_file = sorted((raw / f"images{subset}").glob("*_0000.nii.gz"))[0]
            case = image_file.name[: -len("_0000.nii.gz")]
            image_voxels = "x".join(map(str, sitk.ReadImage(str(image_file)).GetSize()[::-1]))
            for mirroring in args.mirroring:
                totals = {}
                for method, (trainer_class, plans) in METHODS.items():
                    predictor = untrained_predictor(trainer_class, preprocessed, plans, dataset_json, device,
                                                    mirroring == "on")
                    seconds = time_case(predictor, image_file, raw / f"labels{subset}" / f"{case}.nii.gz",
                                        work / f"{kind.replace(' ', '_')}_{plans}_{case}", method == PPM,
                                        lcc_mode, device)
                    totals[method] = sum(seconds.get(step, 0.0) for step in STEPS)
                    ratio = f"{totals[DEFAULT] / totals[PPM]:.2f}" if method == PPM else "-"
                    table.add([f"{kind} ({preset} preset)", image_voxels, method, mirroring,
                               f"{seconds['network voxels'] / 1e6:.1f} M",
                               *[f"{seconds[step]:.2f}" if step in seconds else "-" for step in STEPS],
                               f"{totals[method]:.2f}", f"{seconds['network'] / seconds['network voxels'] * 1e6:.3f}",
                               ratio])
    if args.record:
        table.record("Prediction per case, step by step (benchmarks/inference.py, untrained networks, CRF on "
                     "network-like probabilities)", device)


if __name__ == "__main__":
    main()
