"""Trainer variants named the nnU-Net way: a shorter PPMTrainer run, or a tiny budget for tests on the CPU.

PPMTrainer_Xepochs keeps the paper's learning-rate milestones at 3/8, 5/8 and
7/8 of the run. The `_debug` trainers run 2 epochs of 2 iterations (1
validation iteration) and predict without test-time mirroring (their
validation and any later prediction with them are 8x cheaper): enough to
prove the plumbing on a CPU, nothing more. They are seeded (``SeededTraining``)
and save checkpoint_latest.pth after every epoch, so that tests get the same
model from the same data and can kill and resume a training.
nnUNetTrainer_debug is stock nnU-Net with that same budget, the baseline that
PPMTrainer_debug is compared with in tests and the smoke run.
nnUNetTrainer_untrained trains nothing and skips the final validation: its
checkpoint_final.pth holds nnU-Net's initial weights, a network to time
(benchmarks/whole_ct.py --against-nnunet: nnUNetTrainer_debug on its 2 mm whole
CTs grew past 9 GB on the CPU and was killed for memory).

The `_cpuDemo` pair gives both methods of `nnunet_ppm demo` the same training
time on 2 CPU cores, as a fixed number of iterations per trainer from its
measured step time (reproducible runs; each schedule computed from its own
iterations); PPMTrainer_cpuDemo uses the demo learning rate 1e-2
(``DemoLearningRate``); both are seeded and predict without test-time
mirroring. The `_gpuDemo` pair runs the same iterations for both methods.

PPMTrainerBenchmark_5epochs / _noDataLoading time the training loop
(benchmarks/training_loop.py), like nnU-Net's nnUNetTrainerBenchmark_5epochs
(which needs CUDA and deep supervision): 5 epochs of 50 iterations, no
checkpoints, no final validation; they write the seconds of each epoch's
training iterations to benchmark_result.json. The _noDataLoading one feeds
one fixed random batch, already on the device, to nnU-Net's own loop. The
PPMTrainerBenchmark_3epochs_4its pair is the same at a CPU's pace.
"""
import itertools
import json
import os
import random
import time
from typing import Optional

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

from nnunet_ppm.atomic_io import write_text_atomic
from nnunet_ppm.training.ppm_trainer import PPMTrainer


class TrainingBudget:
    """Mixin for an nnU-Net trainer: replaces its number of epochs and (validation) iterations per epoch."""

    budget_epochs: Optional[int] = None
    budget_iterations_per_epoch: Optional[int] = None
    budget_val_iterations_per_epoch: Optional[int] = None
    budget_save_every: Optional[int] = None  # epochs between checkpoint_latest.pth saves (nnU-Net: 50)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.budget_save_every is not None:
            self.save_every = self.budget_save_every
        if self.budget_epochs is not None:
            self.num_epochs = self.budget_epochs
        if self.budget_iterations_per_epoch is not None:
            self.num_iterations_per_epoch = self.budget_iterations_per_epoch
        if self.budget_val_iterations_per_epoch is not None:
            self.num_val_iterations_per_epoch = self.budget_val_iterations_per_epoch


SEED_ENV = "nnUNet_ppm_seed"


def training_seed(default: int) -> int:
    """The seed of a seeded training: the environment variable nnUNet_ppm_seed, else ``default``."""
    value = os.environ.get(SEED_ENV, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ValueError(f"{SEED_ENV}={value!r}: expected a non-negative integer seed")
    return int(value)


def seed_random_generators(seed: int) -> None:
    """Seed python's random, numpy's global generator and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch, drawn from (training seed, epoch) so that epochs are independent and reproducible."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class SeededTraining:
    """Mixin for an nnU-Net trainer (nnU-Net 2.8.1 seeds nothing): the same data give the same model.

    The seed (nnUNet_ppm_seed, else ``default_training_seed``) is written to the training log. It seeds
    python, numpy and torch before the network is built, and again at the start of every epoch from
    (seed, epoch): nnU-Net's data loader draws its crops from numpy's global generator and the mirroring
    from torch's, so an epoch's batches depend on the seed and the epoch number only, and a run resumed
    with ``--c`` trains exactly the epochs an uninterrupted run would. Exact only without data-loading
    workers (nnUNet_n_proc_DA=0): nnU-Net's workers are started unseeded and deliver batches in
    whichever order they finish.
    """

    default_training_seed = 0

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.training_seed = training_seed(self.default_training_seed)

    def initialize(self):
        if not self.was_initialized:
            self.print_to_log_file(f"seed {self.training_seed} ({SEED_ENV}, default {self.default_training_seed}); "
                                   f"reseeded per epoch from (seed, epoch)"
                                   + ("" if get_allowed_n_proc_DA() == 0 else
                                      f"; {get_allowed_n_proc_DA()} data-loading workers are not seeded"))
            seed_random_generators(self.training_seed)
        super().initialize()

    def on_train_epoch_start(self):
        seed_random_generators(epoch_seed(self.training_seed, self.current_epoch))
        super().on_train_epoch_start()


class NoTestTimeMirroring:
    """Mixin: train with the parent's augmentation, but store no mirroring axes, so inference skips test-time
    mirroring (8 network evaluations per window in 3D)."""

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        configuration = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return configuration


class DebugBudget(SeededTraining, NoTestTimeMirroring, TrainingBudget):
    budget_epochs, budget_iterations_per_epoch, budget_val_iterations_per_epoch = 2, 2, 1
    budget_save_every = 1


# `nnunet_ppm demo --budget cpu`: the same training time per method, as iterations from the seconds per
# iteration measured on 2 idle CPU cores (validation iterations included; the demo runs of 2026-12-03: PPM 0.32 and
# 0.38 s, nnU-Net 9.95 and 10.45 s; docs/demo.md)
CPU_DEMO_TRAINING_SECONDS = 200
PPM_CPU_STEP_SECONDS = 0.32  # PPMTrainer, batch 2 x 24x32x32 ROI patches (the 3D_FCN_PPM network)
NNUNET_CPU_STEP_SECONDS = 10.0  # nnUNetTrainer, batch 2 x 48x64x80 whole-CT patches (nnU-Net's 5-stage U-Net)


def cpu_demo_iterations_per_epoch(step_seconds: float, epochs: int) -> int:
    """Iterations per epoch that fill CPU_DEMO_TRAINING_SECONDS in `epochs` epochs at `step_seconds` each."""
    return max(1, round(CPU_DEMO_TRAINING_SECONDS / step_seconds / epochs))


class CpuDemoBudget(SeededTraining, NoTestTimeMirroring, TrainingBudget):
    """`nnunet_ppm demo --budget cpu`: the same training time per method on 2 CPU cores, as a fixed number of
    iterations per trainer (set by each trainer from its measured step time); predictions without mirroring."""
    budget_val_iterations_per_epoch = 2


class DemoLearningRate:
    """Mixin for PPMTrainer: initial learning rate 1e-2 instead of the paper's 1e-3 (same momentum, weight
    decay and milestones at 3/8, 5/8, 7/8 of the run). A demo variant: at 1e-3 the network barely moves
    within a CPU demo's minutes (docs/demo.md has the measured curves)."""

    demo_initial_lr = 1e-2

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = self.demo_initial_lr


class GpuDemoBudget(TrainingBudget):
    """`nnunet_ppm demo --budget gpu`: 30 epochs of 250 iterations per method."""
    budget_epochs, budget_iterations_per_epoch, budget_val_iterations_per_epoch = 30, 250, 50


ITERATIONS_ENV = "nnUNet_ppm_iterations"


class KeepEpochCheckpoints:
    """Mixin: also keep checkpoint_epoch_<N>.pth after every epoch (N epochs done), the points of a learning curve."""

    def on_epoch_end(self):
        super().on_epoch_end()
        if self.local_rank == 0:
            self.save_checkpoint(os.path.join(self.output_folder, f"checkpoint_epoch_{self.current_epoch}.pth"))


class IterationsFromEnvironment(KeepEpochCheckpoints, SeededTraining, NoTestTimeMirroring, TrainingBudget):
    """Mixin for benchmarks/learning_curve.py: ``nnUNet_ppm_iterations`` training iterations (the environment
    variable, required) in `budget_epochs` epochs, each epoch's checkpoint kept; seeded, no test-time mirroring,
    no final validation.
    The benchmark computes the iterations from the trainer's measured step time, so that every cell trains for
    the same time."""

    budget_epochs, budget_val_iterations_per_epoch = 5, 4

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        value = os.environ.get(ITERATIONS_ENV, "")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{type(self).__name__} needs the environment variable {ITERATIONS_ENV} (training "
                             f"iterations, a positive integer); found {value!r}")
        self.num_iterations_per_epoch = max(1, round(int(value) / self.num_epochs))

    def initialize(self):
        if not self.was_initialized:
            self.print_to_log_file(f"{ITERATIONS_ENV}={os.environ[ITERATIONS_ENV]}: {self.num_epochs} epochs of "
                                   f"{self.num_iterations_per_epoch} iterations")
        super().initialize()

    def perform_actual_validation(self, save_probabilities: bool = False):
        """No prediction of the fold's validation cases: the benchmark scores its held-out whole CTs instead."""
        self.print_to_log_file("final validation skipped: benchmarks/learning_curve.py scores the held-out whole CTs")


class TrainingLoopBenchmark(TrainingBudget):
    """Mixin: time the training iterations of every epoch; no checkpoints, no final validation.

    Writes ``benchmark_result.json`` in the fold folder: seconds of each epoch's
    training iterations (validation excluded), iterations per epoch, batch size,
    patch size, device and whether batches came from nnU-Net's data loader.
    """
    budget_epochs, budget_iterations_per_epoch, budget_val_iterations_per_epoch = 5, 50, 1
    data_loading = True

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.disable_checkpointing = True
        self.train_seconds_per_epoch = []
        self._epoch_start = None

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._synchronize()
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, train_outputs):
        self._synchronize()
        self.train_seconds_per_epoch.append(time.perf_counter() - self._epoch_start)
        super().on_train_epoch_end(train_outputs)

    def perform_actual_validation(self, save_probabilities: bool = False):
        """No validation of the fold's cases: this run only measures speed."""

    def on_train_end(self):
        super().on_train_end()
        if self.local_rank != 0:
            return
        result = {"trainer": self.__class__.__name__, "train_seconds_per_epoch": self.train_seconds_per_epoch,
                  "iterations_per_epoch": self.num_iterations_per_epoch, "batch_size": self.batch_size,
                  "patch_size": list(self.configuration_manager.patch_size), "device": str(self.device),
                  "data_loading": self.data_loading,
                  "data_augmentation_processes": get_allowed_n_proc_DA() if self.data_loading else 0,
                  "torch": torch.__version__}
        write_text_atomic(os.path.join(self.output_folder, "benchmark_result.json"), json.dumps(result, indent=2))


class CpuTrainingLoopBenchmark(TrainingLoopBenchmark):
    """TrainingLoopBenchmark at a CPU's pace: 3 epochs of 4 iterations (the first epoch is warm-up)."""
    budget_epochs, budget_iterations_per_epoch = 3, 4


class FixedBatch:
    """Mixin for TrainingLoopBenchmark: every iteration gets the same random batch, already on the device.

    Targets are one label map per sample (trainers without deep supervision, as PPMTrainer).
    """
    data_loading = False

    def get_dataloaders(self):
        patch = list(self.configuration_manager.patch_size)
        data = torch.rand((self.batch_size, self.num_input_channels, *patch), device=self.device)
        target = torch.randint(0, len(self.label_manager.all_labels), (self.batch_size, 1, *patch),
                               device=self.device).float()
        batch = {"data": data, "target": target}
        return itertools.repeat(batch), itertools.repeat(batch)


class PPMTrainer_5epochs(TrainingBudget, PPMTrainer):
    budget_epochs = 5


class PPMTrainer_10epochs(TrainingBudget, PPMTrainer):
    budget_epochs = 10


class PPMTrainer_50epochs(TrainingBudget, PPMTrainer):
    budget_epochs = 50


class PPMTrainer_100epochs(TrainingBudget, PPMTrainer):
    budget_epochs = 100


class PPMTrainer_250epochs(TrainingBudget, PPMTrainer):
    budget_epochs = 250


class PPMTrainer_debug(DebugBudget, PPMTrainer):
    pass


class nnUNetTrainer_debug(DebugBudget, nnUNetTrainer):
    pass


class Untrained:
    """Mixin for an nnU-Net trainer: no epoch and no final validation; checkpoint_final.pth holds the initial weights."""

    def run_training(self) -> None:
        self.on_train_start()
        self.on_train_end()

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        self.print_to_log_file("untrained network (a network to time): no validation")


class nnUNetTrainer_untrained(Untrained, DebugBudget, nnUNetTrainer):
    pass


class PPMTrainer_cpuDemo(DemoLearningRate, CpuDemoBudget, PPMTrainer):
    budget_epochs = 20
    budget_iterations_per_epoch = cpu_demo_iterations_per_epoch(PPM_CPU_STEP_SECONDS, budget_epochs)


class nnUNetTrainer_cpuDemo(CpuDemoBudget, nnUNetTrainer):
    budget_epochs, budget_val_iterations_per_epoch = 7, 1
    budget_iterations_per_epoch = cpu_demo_iterations_per_epoch(NNUNET_CPU_STEP_SECONDS, budget_epochs)


class PPMTrainer_gpuDemo(GpuDemoBudget, PPMTrainer):
    pass


class nnUNetTrainer_gpuDemo(GpuDemoBudget, nnUNetTrainer):
    pass


class PPMTrainerBenchmark_5epochs(TrainingLoopBenchmark, PPMTrainer):
    pass


class PPMTrainerBenchmark_5epochs_noDataLoading(FixedBatch, TrainingLoopBenchmark, PPMTrainer):
    pass


class PPMTrainerBenchmark_3epochs_4its(CpuTrainingLoopBenchmark, PPMTrainer):
    pass


class PPMTrainerBenchmark_3epochs_4its_noDataLoading(FixedBatch, CpuTrainingLoopBenchmark, PPMTrainer):
    pass


class nnUNetTrainerBenchmark_3epochs_4its(CpuTrainingLoopBenchmark, nnUNetTrainer):
    pass


class PPMTrainer_learningCurve(IterationsFromEnvironment, PPMTrainer):
    pass


class PPMTrainer_learningCurveDemoLR(DemoLearningRate, IterationsFromEnvironment, PPMTrainer):
    pass


class nnUNetTrainer_learningCurve(IterationsFromEnvironment, nnUNetTrainer):
    pass
