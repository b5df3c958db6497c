"""Trainer variants: which ones skip test-time mirroring; the seeds of seeded trainings.

That a seeded training gives the same model, and resumes exactly, is tested on real trainings in
test_interrupted_training.py."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nnunet_ppm.training.variants import (SEED_ENV, NoTestTimeMirroring, PPMTrainer_cpuDemo, PPMTrainer_debug,
                                          PPMTrainer_gpuDemo, epoch_seed, nnUNetTrainer_cpuDemo, nnUNetTrainer_debug,
                                          nnUNetTrainer_gpuDemo, nnUNetTrainer_untrained, seed_random_generators,
                                          training_seed)


class _TrainerWithMirroring:
    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        self.inference_allowed_mirroring_axes = (0, 1, 2)
        return "rotation", "dummy 2D", (32, 64, 64), (0, 1, 2)


class _WithoutTestTimeMirroring(NoTestTimeMirroring, _TrainerWithMirroring):
    pass


def test_training_keeps_mirroring_but_inference_does_not():
    trainer = _WithoutTestTimeMirroring()
    configuration = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    assert configuration[3] == (0, 1, 2)  # mirroring axes for training augmentation unchanged
    assert trainer.inference_allowed_mirroring_axes is None


@pytest.mark.parametrize("trainer, skips", [(PPMTrainer_debug, True), (nnUNetTrainer_debug, True),
                                            (PPMTrainer_cpuDemo, True), (nnUNetTrainer_cpuDemo, True),
                                            (PPMTrainer_gpuDemo, False), (nnUNetTrainer_gpuDemo, False),
                                            (nnUNetTrainer_untrained, True)])
def test_cpu_variants_skip_test_time_mirroring_gpu_ones_do_not(trainer, skips):
    """The variant's own configure method (its whole MRO, nnU-Net's or PPMTrainer's included) on a 32x64x64 patch;
    the trainer is not built (no plans needed): only what the method reads is set."""
    configured = object.__new__(trainer)
    configured.configuration_manager = SimpleNamespace(patch_size=[32, 64, 64])
    configured.print_to_log_file = lambda *args, **kwargs: None
    training_mirror_axes = configured.configure_rotation_dummyDA_mirroring_and_inital_patch_size()[3]
    assert training_mirror_axes == (0, 1, 2), "training keeps its mirroring augmentation"
    assert configured.inference_allowed_mirroring_axes == (None if skips else (0, 1, 2))


def test_the_seed_is_nnUNet_ppm_seed_else_the_default(monkeypatch):
    monkeypatch.delenv(SEED_ENV, raising=False)
    assert training_seed(5) == 5
    monkeypatch.setenv(SEED_ENV, "42")
    assert training_seed(5) == 42
    monkeypatch.setenv(SEED_ENV, "-1")
    with pytest.raises(ValueError, match=r"nnUNet_ppm_seed='-1': expected a non-negative integer seed"):
        training_seed(5)


def test_each_epoch_has_its_own_reproducible_seed():
    seeds = {(seed, epoch): epoch_seed(seed, epoch) for seed in (0, 1) for epoch in range(50)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(epoch_seed(seed, epoch) == value for (seed, epoch), value in seeds.items())


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seeding_fixes_python_numpy_and_torch():
    seed_random_generators(3)
    first = _draws()
    seed_random_generators(3)
    assert _draws() == first
    seed_random_generators(4)
    assert all(a != b for a, b in zip(_draws(), first))
