"""The `nnunet_ppm` entry point: overview, unknown subcommands, `trainer-dir` (as installed console script)."""
import subprocess
import sys
from pathlib import Path

from nnunet_ppm.cli import SUBCOMMANDS

BIN = Path(sys.executable).parent


def nnunet_ppm(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "nnunet_ppm"), *args], capture_output=True, text=True, env=env)


def test_overview_lists_every_subcommand_and_exits_zero():
    finished = nnunet_ppm()
    assert finished.returncode == 0 and finished.stderr == ""
    listed = [line.split()[0] for line in finished.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(SUBCOMMANDS)
    assert nnunet_ppm("--help").stdout == finished.stdout


def test_unknown_subcommand_is_a_clear_error_with_exit_code_2():
    finished = nnunet_ppm("trian")
    assert finished.returncode == 2
    assert finished.stderr.strip() == "nnunet_ppm: unknown subcommand 'trian'"
    assert "  convert" in finished.stdout, "the overview shows what exists"


def test_trainer_dir_is_the_folder_that_makes_nnunet_find_ppm_trainer(monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    finished = nnunet_ppm("trainer-dir")
    assert finished.returncode == 0
    folder = Path(finished.stdout.strip())
    assert folder.is_absolute() and folder.is_dir()
    monkeypatch.setenv("nnUNet_extTrainer", str(folder))  # only the printed folder: nnU-Net must find PPMTrainer there
    trainer = recursive_find_trainer_class_by_name("PPMTrainer")
    from nnunet_ppm.training.ppm_trainer import PPMTrainer
    assert trainer is PPMTrainer
