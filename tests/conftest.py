"""Shared fixtures: nnU-Net folders in a temporary place, and the optional real KiTS labels."""
import os
from pathlib import Path

import pytest

# Two pytest-xdist workers share CI's 2 cores, and nnU-Net sets torch to every core in each process
# (nnUNetv2_train, nnUNetv2_predict -device cpu): OpenMP threads that spin while they wait then take the cores
# from the other worker's process (measured here, a small 3D training step, 2 threads in each of 2 processes:
# 0.14 s per step spinning, 0.06 s passive; alone 0.046 s and 0.033 s). Set before torch is imported; the
# subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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


SMOKE_RUN_GROUP = "tiny_dataset"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Groups for pytest-xdist (`--dist loadgroup`, pytest.ini): the tests that use the demo's smoke run
    (`tiny_dataset`, built once per worker process) form one group, run first, as it is the longest; every other
    module is a group of its own, so that no module-scoped fixture is built twice."""
    shares_smoke_run = [SMOKE_RUN_GROUP in item.fixturenames for item in items]
    for item, shares in zip(items, shares_smoke_run):
        item.add_marker(pytest.mark.xdist_group(SMOKE_RUN_GROUP if shares else item.module.__name__))
    items[:] = ([item for item, shares in zip(items, shares_smoke_run) if shares]
                + [item for item, shares in zip(items, shares_smoke_run) if not shares])


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
    """The demo's smoke run, shared by the session (nnunet_runs.make_tiny_dataset); its models with `.model(trainer, plans)`."""
    from nnunet_runs import make_tiny_dataset
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_nnunet"))


@pytest.fixture
def tiny_env(tiny_dataset, monkeypatch):
    """Export the tiny dataset's nnU-Net environment for in-process nnU-Net calls of one test."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_def_n_proc", "nnUNet_compile"):
        monkeypatch.setenv(name, tiny_dataset.env[name])
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    return tiny_dataset


@pytest.fixture(scope="session")
def nnunet_ppm_prediction(tiny_dataset, tmp_path_factory):
    """`nnUNetv2_predict --save_probabilities` of the held-out cases with the session's PPMTrainer_debug model,
    in nnU-Net's sequential mode (-npp 0 -nps 0: no worker processes): labels, .npz probabilities, .pkl properties."""
    from nnunet_runs import run_command
    out = tmp_path_factory.mktemp("nnunet_ppm_prediction")
    run_command(["nnUNetv2_predict", "-i", tiny_dataset.raw / "imagesTs", "-o", out, "-d", tiny_dataset.dataset_id,
                 "-c", "3d_fullres", "-f", "0", "-tr", "PPMTrainer_debug", "-p", "nnUNetPPMPlans", "-device", "cpu",
                 "-npp", "0", "-nps", "0", "--save_probabilities", "--disable_progress_bar"], tiny_dataset.env)
    return out
