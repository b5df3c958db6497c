"""Trainer variants named the nnU-Net way: a shorter PPMTrainer run, or a tiny budget for tests on the CPU.

PPMTrainer_Xepochs keeps the paper's learning-rate milestones at 3/8, 5/8 and
7/8 of the run. The `_debug` trainers run 2 epochs of 3 iterations (1
validation iteration) and predict without test-time mirroring (their
validation and any later prediction with them are 8x cheaper): enough to
prove the plumbing on a CPU, nothing more. The `_cpuDemo` / `_gpuDemo` pairs
give both methods the same budget in `nnunet_ppm demo`; the `_cpuDemo` ones
also predict without test-time mirroring.
nnUNetTrainer_debug is stock nnU-Net with that same budget, the baseline that
PPMTrainer_debug is compared with in tests and the CPU demo.
"""
from typing import Optional

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ppm.training.ppm_trainer import PPMTrainer


class TrainingBudget:
    """Mixin for an nnU-Net trainer: replaces its number of epochs and (validation) iterations per epoch."""

    budget_epochs: Optional[int] = None
    budget_iterations_per_epoch: Optional[int] = None
    budget_val_iterations_per_epoch: Optional[int] = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.budget_epochs is not None:
            self.num_epochs = self.budget_epochs
        if self.budget_iterations_per_epoch is not None:
            self.num_iterations_per_epoch = self.budget_iterations_per_epoch
        if self.budget_val_iterations_per_epoch is not None:
            self.num_val_iterations_per_epoch = self.budget_val_iterations_per_epoch


class NoTestTimeMirroring:
    """Mixin: train with the parent's augmentation, but store no mirroring axes, so inference skips test-time
    mirroring (8 network evaluations per window in 3D)."""

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        configuration = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return configuration


class DebugBudget(NoTestTimeMirroring, TrainingBudget):
    budget_epochs, budget_iterations_per_epoch, budget_val_iterations_per_epoch = 2, 3, 1


class CpuDemoBudget(NoTestTimeMirroring, TrainingBudget):
    """`nnunet_ppm demo --budget cpu`: a few minutes per method on 2 CPU cores, predictions without mirroring."""
    budget_epochs, budget_iterations_per_epoch, budget_val_iterations_per_epoch = 4, 20, 2


class GpuDemoBudget(TrainingBudget):
    """`nnunet_ppm demo --budget gpu`: 30 epochs of 250 iterations per method."""
    budget_epochs, budget_iterations_per_epoch, budget_val_iterations_per_epoch = 30, 250, 50


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


class PPMTrainer_cpuDemo(CpuDemoBudget, PPMTrainer):
    pass


class nnUNetTrainer_cpuDemo(CpuDemoBudget, nnUNetTrainer):
    pass


class PPMTrainer_gpuDemo(GpuDemoBudget, PPMTrainer):
    pass


class nnUNetTrainer_gpuDemo(GpuDemoBudget, nnUNetTrainer):
    pass
