"""Tests that need ../shared/data skip outside CI, with their reason printed, and fail under CI."""
import os
import subprocess
import sys

from conftest import REPO_ROOT

# a test that asks for the real KiTS19 labels (test_synthetic's painting test)
NEEDS_SHARED_DATA = "tests/test_synthetic.py::test_painting_keeps_the_real_label_map_exactly"


def run_without_shared_data(ci: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": ci, "NNUNET_PPM_SHARED_DATA": str(tmp_path / "absent")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", NEEDS_SHARED_DATA],
                          cwd=REPO_ROOT, env=env, capture_output=True, encoding="utf-8", errors="replace")


def test_missing_shared_data_skips_with_its_reason_outside_ci(tmp_path):
    finished = run_without_shared_data("false", tmp_path)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "1 skipped" in finished.stdout
    assert "SKIPPED [1] tests/test_synthetic.py" in finished.stdout and "absent/kits19-labels" in finished.stdout


def test_missing_shared_data_fails_under_ci(tmp_path):
    finished = run_without_shared_data("true", tmp_path)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "CI must have them" in finished.stdout and "skipped" not in finished.stdout
