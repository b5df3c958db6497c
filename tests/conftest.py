"""Shared fixtures: nnU-Net folders in a temporary place, and the optional real KiTS labels."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NNUNET_PPM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_data_folder(name: str) -> Path:
    """SHARED_DATA / name; when it is absent the test skips, except under CI (CI=true), where it fails.

    CI always has ../shared/data: a CI run whose real-label tests skipped would prove less than it claims.
    """
    folder = SHARED_DATA / name
    if not folder.is_dir():
        message = f"real label maps not found at {folder} (set NNUNET_PPM_SHARED_DATA to the shared data folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI must have them", pytrace=False)
        pytest.skip(message)
    return folder


@pytest.fixture
def nnunet_dirs(tmp_path, monkeypatch):
    """nnUNet_raw / nnUNet_preprocessed / nnUNet_results under tmp_path, exported for this test."""
    dirs = {name: tmp_path / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for name, path in dirs.items():
        path.mkdir()
        monkeypatch.setenv(name, str(path))
    return dirs


@pytest.fixture(scope="session")
def kits19_labels_dir():
    """../shared/data/kits19-labels (real KiTS19 label maps); see shared_data_folder for when it is absent."""
    return shared_data_folder("kits19-labels")


@pytest.fixture(scope="session")
def kits23_labels_dir():
    """../shared/data/kits23-labels (real KiTS23 label maps); see shared_data_folder for when it is absent."""
    return shared_data_folder("kits23-labels")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The shared tiny synthetic dataset (nnunet_runs.make_tiny_dataset); train models with `.train(...)`."""
    from nnunet_runs import make_tiny_dataset
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_nnunet"))


@pytest.fixture
def tiny_env(tiny_dataset, monkeypatch):
    """Export the tiny dataset's nnU-Net environment for in-process nnU-Net calls of one test."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_def_n_proc", "nnUNet_compile"):
        monkeypatch.setenv(name, tiny_dataset.env[name])
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    return tiny_dataset
