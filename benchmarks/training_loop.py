"""Benchmark 2: iterations/s of a real `nnUNetv2_train` of PPMTrainer, next to the network step alone.

    python benchmarks/training_loop.py                                    # CPU: small CTs, 32x64x64, batch 2
    python benchmarks/training_loop.py --device cuda --patch 64 160 160 --batch 4 --record   # GPU (see gpu/)

Three rows at the same patch and batch, on a synthetic dataset that this
script generates, converts and plans (nnunet_ppm.experiment's steps):

1. network step: forward, backward and SGD of the network the plans build,
   timed alone (network_step.time_training_step; nnU-Net's precision: fp32
   on the CPU, fp16 autocast on CUDA);
2. `nnUNetv2_train -tr PPMTrainerBenchmark_5epochs_noDataLoading`: nnU-Net's
   own training loop (loss, gradient clipping, logging) fed one fixed batch
   already on the device;
3. `nnUNetv2_train -tr PPMTrainerBenchmark_5epochs`: the real thing, batches
   from nnU-Net's data loader and augmentation workers (``nnUNet_n_proc_DA``,
   ``--da-workers``; nnU-Net's default otherwise).

Both trainers run 5 epochs of 50 iterations on CUDA (3 epochs of 4 on the
CPU: PPMTrainerBenchmark_3epochs_4its) and write the seconds of each epoch's
training iterations (validation excluded) to benchmark_result.json; the first
epoch (workers starting, torch.compile on CUDA) is left out of the median.
Data loading keeps up when row 3 is as fast as row 2.
"""
import argparse
import json
import math
import os
import statistics
import tempfile
from pathlib import Path
from typing import List, Tuple

import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from network_step import time_training_step
from nnunet_ppm.experiment import Experiment, StepRunner, nnunet_environment
from nnunet_ppm.training.ppm_trainer import PPMTrainer
from results import Table

PLANS = "nnUNetPPMPlans"
NETWORK_STEP = "network step (benchmarks/network_step.py)"
TRAINERS = {"nnUNetv2_train, one fixed batch (no data loading)": "{}_noDataLoading",
            "nnUNetv2_train, nnU-Net data loading": "{}"}
TRAINER_PER_DEVICE = {"cuda": "PPMTrainerBenchmark_5epochs", "cpu": "PPMTrainerBenchmark_3epochs_4its"}


def network_step_seconds(preprocessed: Path, device: torch.device, steps: int) -> Tuple[float, int, List[int]]:
    """Seconds per training step of the network the PPM plans build, and the plans' batch size and patch."""
    plans_manager = PlansManager(load_json(str(preprocessed / f"{PLANS}.json")))
    configuration = plans_manager.get_configuration("3d_fullres")
    dataset_json = load_json(str(preprocessed / "dataset.json"))
    num_classes = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    torch.manual_seed(0)
    network = PPMTrainer.build_network_architecture(plans_manager, configuration, 1, num_classes, False)
    if device.type == "cuda":
        network = torch.compile(network)
    result = time_training_step(network, configuration.batch_size, configuration.patch_size, num_classes, device,
                                "fp16" if device.type == "cuda" else "fp32", steps, channels_last=False)
    return result["ms"] / 1e3, configuration.batch_size, list(configuration.patch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--patch", type=int, nargs=3, default=[32, 64, 64], help="patch of the PPM plans")
    parser.add_argument("--batch", type=int, default=2, help="batch size of the PPM plans")
    parser.add_argument("--preset", default="small", help="synthetic CT preset (default small: ~200x200 in-plane)")
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--da-workers", type=int, default=None, help="nnUNet_n_proc_DA (default: nnU-Net's choice)")
    parser.add_argument("--network-steps", type=int, default=3, help="timed steps of the network-step row")
    parser.add_argument("--work", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--dataset-id", type=int, default=971)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()

    device = torch.device(args.device)
    table = Table(["what", "batch x patch", "ms/iteration", "iterations/s", "Mvoxel/s", "vs network step"])
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        env = nnunet_environment(work, own_folders=True)
        steps = StepRunner(work, env, total=6)
        experiment = Experiment(work, env, steps, processes=min(os.cpu_count() or 1, 8))
        raw = experiment.convert(experiment.generate(args.cases, 0, args.preset), "roi", args.dataset_id, 0)
        experiment.plan_nnunet(raw)
        experiment.plan_ppm(raw, args.batch, args.patch)
        if args.da_workers is not None:
            env["nnUNet_n_proc_DA"] = str(args.da_workers)
        step_seconds, batch, patch = network_step_seconds(Path(env["nnUNet_preprocessed"]) / raw.name, device,
                                                          args.network_steps)
        seconds, data_workers = {NETWORK_STEP: step_seconds}, 0
        for what, trainer_name in TRAINERS.items():
            trainer = trainer_name.format(TRAINER_PER_DEVICE[args.device])
            steps.run(f"nnUNetv2_train {trainer}", ["nnUNetv2_train", args.dataset_id, "3d_fullres", "0", "-tr",
                                                    trainer, "-p", PLANS, "-device", args.device])
            result = json.loads((Path(env["nnUNet_results"]) / raw.name / f"{trainer}__{PLANS}__3d_fullres" / "fold_0"
                                 / "benchmark_result.json").read_text(encoding="utf-8"))
            seconds[what] = statistics.median(result["train_seconds_per_epoch"][1:]) / result["iterations_per_epoch"]
            data_workers = max(data_workers, result["data_augmentation_processes"])
    voxels = batch * math.prod(patch)
    for what, s in seconds.items():
        table.add([what, f"{batch} x {'x'.join(map(str, patch))}", f"{s * 1e3:.0f}", f"{1 / s:.2f}",
                   f"{voxels / s / 1e6:.2f}", f"{step_seconds / s:.2f}"])
    if args.record:
        table.record(f"PPMTrainer training loop (benchmarks/training_loop.py, {args.preset} synthetic CTs, "
                     f"{data_workers} data augmentation processes)", device)


if __name__ == "__main__":
    main()
