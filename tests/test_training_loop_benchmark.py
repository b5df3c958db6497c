"""PPMTrainerBenchmark_5epochs(_noDataLoading): nnU-Net's own loop, timed per epoch, results in benchmark_result.json."""
import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from nnunetv2.run.run_training import get_trainer_from_args

from nnunet_ppm.demo import BUDGETS

pytestmark = pytest.mark.integration
TRAIN_STEP_PAUSE, VALIDATION_PAUSE = 0.3, 0.6  # seconds added to the timed iterations / to the untimed validation


def _delayed(method, seconds: float):
    def wrapper(*args, **kwargs):
        time.sleep(seconds)
        return method(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("trainer_name, data_loading", [("PPMTrainerBenchmark_5epochs", True),
                                                        ("PPMTrainerBenchmark_5epochs_noDataLoading", False)])
def test_benchmark_trainer_times_each_epoch_and_writes_no_checkpoint(tiny_env, trainer_name, data_loading):
    trainer = get_trainer_from_args(str(tiny_env.dataset_id), "3d_fullres", 0, trainer_name, "nnUNetPPMPlans", device=torch.device("cpu"))
    trainer.num_epochs, trainer.num_iterations_per_epoch = 1, 1  # the variant's 5 x 50, shortened for the CPU
    # known pauses where the timer must run (a training step) and where it must not (validation)
    trainer.train_step = _delayed(trainer.train_step, TRAIN_STEP_PAUSE)
    trainer.on_validation_epoch_start = _delayed(trainer.on_validation_epoch_start, VALIDATION_PAUSE)
    try:
        trainer.run_training()
        fold = Path(trainer.output_folder)
        result = json.loads((fold / "benchmark_result.json").read_text(encoding="utf-8"))
        [seconds] = result["train_seconds_per_epoch"]
        epoch_seconds = (trainer.logger.get_value("epoch_end_timestamps", step=0)
                         - trainer.logger.get_value("epoch_start_timestamps", step=0))  # nnU-Net's own epoch time
        assert TRAIN_STEP_PAUSE <= seconds <= epoch_seconds - VALIDATION_PAUSE, (seconds, epoch_seconds)
        assert (result["iterations_per_epoch"], result["batch_size"], result["patch_size"]) == (
            1, BUDGETS["smoke"].ppm_batch_size, list(BUDGETS["smoke"].ppm_patch))
        assert result["data_loading"] is data_loading
        assert not list(fold.glob("checkpoint_*.pth"))
    finally:
        shutil.rmtree(trainer.output_folder_base)
