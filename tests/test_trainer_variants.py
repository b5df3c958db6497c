"""Trainer variants: which ones skip test-time mirroring."""
import pytest

from nnunet_ppm.training.variants import (NoTestTimeMirroring, PPMTrainer_cpuDemo, PPMTrainer_debug,
                                          PPMTrainer_gpuDemo, nnUNetTrainer_cpuDemo, nnUNetTrainer_debug,
                                          nnUNetTrainer_gpuDemo)


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
                                            (PPMTrainer_gpuDemo, False), (nnUNetTrainer_gpuDemo, False)])
def test_cpu_variants_skip_test_time_mirroring_gpu_ones_do_not(trainer, skips):
    assert issubclass(trainer, NoTestTimeMirroring) is skips
