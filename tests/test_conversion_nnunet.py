"""nnU-Net accepts what `nnunet_ppm synth` + `nnunet_ppm convert` produce (real commands, tiny cases, CPU)."""
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent  # the venv's console scripts, whatever PATH says


def run(command):
    command = [str(BIN / command[0])] + [str(c) for c in command[1:]]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.integration
def test_plan_and_preprocess_verifies_tiny_datasets_with_and_without_roi(nnunet_dirs, tmp_path):
    source = tmp_path / "synthetic"
    run(["nnunet_ppm", "synth", str(source), "--cases", "2", "--seed", "0"])
    run(["nnunet_ppm", "convert", "roi", str(source), "-d", "601"])
    run(["nnunet_ppm", "convert", "roi", str(source), "-d", "602", "--roi", "--roi-size", "100mm", "--keep-healthy"])
    output = run(["nnUNetv2_plan_and_preprocess", "-d", "601", "602", "--verify_dataset_integrity",
                  "-c", "3d_fullres", "-npfp", "1", "-np", "1"])
    assert output.count("verify_dataset_integrity Done") == 2
    for name in ("Dataset601_KidneyTumor", "Dataset602_KidneyTumorROI"):
        assert (nnunet_dirs["nnUNet_preprocessed"] / name / "nnUNetPlans.json").is_file()
        assert len(list((nnunet_dirs["nnUNet_preprocessed"] / name / "nnUNetPlans_3d_fullres").glob("*.pkl"))) >= 2
