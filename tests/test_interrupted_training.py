"""Seeded tiny trainings: the same data give the same model, and a training killed mid-epoch resumes exactly.

A `nnUNetv2_train -tr PPMTrainer_debug` run (2 epochs of 2 iterations, checkpoint_latest.pth after every
epoch, seed 0) is SIGKILLed in epoch 1, leaving the checkpoint of epoch 0, and resumed with `--c`; its final
model must equal the uninterrupted session model's (trained by another process: the same data and seed give
the same model). CPU, nnUNet_n_proc_DA=0 (no data-loading workers, whose batch order nnU-Net leaves to
chance); no single-thread setting was needed for exactness.
"""
import re
from pathlib import Path
from typing import List

import pytest
import torch

from nnunet_ppm.training.lr_schedule import multistep_lr, paper_lr_milestones
from nnunet_runs import kill_when, run_command

pytestmark = pytest.mark.integration

TRAINER, PLANS = "PPMTrainer_debug", "nnUNetPPMPlans"
EPOCH_LINE = re.compile(r": Epoch (\d+) *$", re.MULTILINE)


def _train_args(tiny_dataset, *extra: str) -> list:
    return ["nnUNetv2_train", tiny_dataset.dataset_id, "3d_fullres", 0, "-tr", TRAINER, "-p", PLANS, "-device", "cpu",
            *extra]


def _fold(results: Path, tiny_dataset) -> Path:
    return results / tiny_dataset.raw.name / f"{TRAINER}__{PLANS}__3d_fullres" / "fold_0"


def _logs(fold: Path) -> List[Path]:
    return sorted(fold.glob("training_log_*.txt"))


def _in_epoch_1(fold: Path) -> bool:
    """True once the training logged the start of epoch 1 (checkpoint_latest.pth of epoch 0 is written before)."""
    return (fold / "checkpoint_latest.pth").is_file() and any(
        "1" in EPOCH_LINE.findall(log.read_text(encoding="utf-8", errors="replace")) for log in _logs(fold))


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _assert_same_weights(found: dict, expected: dict, what: str) -> None:
    assert found.keys() == expected.keys()
    different = [name for name in expected if not torch.equal(found[name], expected[name])]
    assert not different, f"{what}: {len(different)} of {len(expected)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def killed_training(tiny_dataset, tmp_path_factory):
    """A training killed (SIGKILL, whole process group) in epoch 1: its nnUNet_results folder's fold_0."""
    root = tmp_path_factory.mktemp("killed_training")
    env = {**tiny_dataset.env, "nnUNet_results": str(root / "results"), "nnUNet_n_proc_DA": "0"}
    fold = _fold(root / "results", tiny_dataset)
    kill_when(_train_args(tiny_dataset), env, lambda: _in_epoch_1(fold), root / "output.txt")
    return fold


def test_killed_training_leaves_the_checkpoint_of_its_last_complete_epoch(killed_training):
    assert not (killed_training / "checkpoint_final.pth").exists()
    assert _load(killed_training / "checkpoint_latest.pth")["current_epoch"] == 1, \
        "the kill came after epoch 1 had ended: the test did not interrupt an epoch"
    assert "seed 0 (nnUNet_ppm_seed, default 0)" in _logs(killed_training)[0].read_text(encoding="utf-8"), \
        "the seed is not logged"


def test_killed_training_resumes_with_the_epoch_and_rate_of_its_checkpoint(killed_training, tiny_dataset):
    fold = killed_training
    env = {**tiny_dataset.env, "nnUNet_results": str(fold.parents[2]), "nnUNet_n_proc_DA": "0"}
    logs_before = set(_logs(fold))
    run_command(_train_args(tiny_dataset, "--c"), env)

    resumed_log = [log for log in _logs(fold) if log not in logs_before]
    assert len(resumed_log) == 1
    text = resumed_log[0].read_text(encoding="utf-8")
    final = _load(fold / "checkpoint_final.pth")
    num_epochs = final["current_epoch"]
    assert num_epochs == 2
    schedule = [multistep_lr(epoch, 1e-3, paper_lr_milestones(num_epochs)) for epoch in range(num_epochs)]
    assert schedule[1] < schedule[0], "the schedule must change between the epochs for this test to mean something"
    assert EPOCH_LINE.findall(text) == ["1"], "the resumed run must train epoch 1, and only it"
    assert re.search(r": Epoch 1 *\n.*Current learning rate: ([0-9.e-]+)", text).group(1) == str(round(schedule[1], 5))
    assert final["logging"]["lrs"] == schedule, "learning rate per epoch"
    assert not (fold / "checkpoint_latest.pth").exists()
    # epochs are seeded from (seed, epoch), so killed + resumed == uninterrupted (the session's model, trained in
    # another process): weights and SGD momentum
    uninterrupted = _load(tiny_dataset.model(TRAINER, PLANS) / "fold_0" / "checkpoint_final.pth")
    _assert_same_weights(final["network_weights"], uninterrupted["network_weights"],
                         "killed + resumed vs uninterrupted training")
    momentum = [(a["momentum_buffer"], b["momentum_buffer"]) for a, b in
                zip(final["optimizer_state"]["state"].values(), uninterrupted["optimizer_state"]["state"].values())]
    assert momentum and all(torch.equal(a, b) for a, b in momentum), "SGD momentum differs"
