"""`nnunet_ppm postprocess` on nnUNetv2_predict-style folders, geometry errors, and the pkl in nnU-Net's own command."""
import os
import pickle

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.cli import main as nnunet_ppm_main
from nnunet_ppm.postprocessing.largest_component import keep_largest_component
from nnunet_ppm.postprocessing.pipeline import PostprocessingSettings, postprocess_probabilities
from nnunet_runs import run_command
from synthetic_postprocessing_cases import small_case, write_image, write_predict_folder


def run_step(*command: str) -> None:
    run_command(command, dict(os.environ))


def _read(path) -> sitk.Image:
    return sitk.ReadImage(str(path))


@pytest.mark.integration
def test_postprocess_folder_matches_in_process_pipeline_and_keeps_empty_cases_empty(tmp_path):
    truth, ct, probabilities, spacing = small_case()
    empty = np.zeros_like(probabilities)
    empty[0] = 1
    write_predict_folder(str(tmp_path / "pred"), str(tmp_path / "raw"),
                         {"kid_001": (ct, probabilities), "kid_002": (ct, empty)}, spacing)
    run_step("nnunet_ppm", "postprocess", "-i", str(tmp_path / "pred"), "-r", str(tmp_path / "raw"),
         "-o", str(tmp_path / "out"), "-np", "1", "--disable_progress_bar")

    written = sorted(os.listdir(tmp_path / "out"))
    assert written == ["dataset.json", "kid_001.nii.gz", "kid_002.nii.gz", "plans.json"]
    seconds = {}
    expected = postprocess_probabilities(probabilities, ct, spacing, PostprocessingSettings(), seconds=seconds)
    assert set(seconds) == {"crf", "largest_component"} and min(seconds.values()) >= 0
    output = _read(tmp_path / "out" / "kid_001.nii.gz")
    raw = _read(tmp_path / "raw" / "kid_001_0000.nii.gz")
    assert np.array_equal(sitk.GetArrayFromImage(output), expected)
    assert output.GetSpacing() == raw.GetSpacing() and output.GetOrigin() == raw.GetOrigin()
    assert not sitk.GetArrayFromImage(_read(tmp_path / "out" / "kid_002.nii.gz")).any()


def _postprocess_in_process(tmp_path) -> int:
    return nnunet_ppm_main(["postprocess", "-i", str(tmp_path / "pred"), "-r", str(tmp_path / "raw"),
                            "-o", str(tmp_path / "out"), "-np", "1", "--disable_progress_bar", "--no-crf"])


def test_probabilities_of_another_shape_are_an_error_naming_the_case(tmp_path):
    truth, ct, probabilities, spacing = small_case()
    write_predict_folder(str(tmp_path / "pred"), str(tmp_path / "raw"), {"kid_007": (ct, probabilities)}, spacing)
    write_image(ct[:-2], spacing, str(tmp_path / "raw" / "kid_007_0000.nii.gz"))
    with pytest.raises(ValueError, match=r"case kid_007: .*spatial shape \(32, 56, 48\), image has \(30, 56, 48\)"):
        _postprocess_in_process(tmp_path)
    assert not (tmp_path / "out" / "kid_007.nii.gz").exists()


def test_probabilities_of_another_geometry_are_an_error_naming_the_case(tmp_path):
    truth, ct, probabilities, spacing = small_case()
    write_predict_folder(str(tmp_path / "pred"), str(tmp_path / "raw"), {"kid_008": (ct, probabilities)}, spacing)
    write_image(ct, (3.0, 0.8, 0.8), str(tmp_path / "raw" / "kid_008_0000.nii.gz"))
    with pytest.raises(ValueError, match="case kid_008: .*spacing"):
        _postprocess_in_process(tmp_path)
    assert sorted(os.listdir(tmp_path / "out")) == ["dataset.json", "plans.json"], "no label map, no temporary file"


def test_missing_probabilities_are_an_error(tmp_path):
    truth, ct, probabilities, spacing = small_case()
    write_predict_folder(str(tmp_path / "pred"), str(tmp_path / "raw"), {"kid_009": (ct, probabilities)}, spacing)
    os.remove(tmp_path / "pred" / "kid_009.npz")
    with pytest.raises(FileNotFoundError, match="kid_009.*--save_probabilities"):
        _postprocess_in_process(tmp_path)


@pytest.mark.integration
def test_pp_pkl_works_through_nnunetv2_apply_postprocessing(tmp_path, nnunet_dirs):
    truth, ct, probabilities, spacing = small_case()
    noisy = probabilities.argmax(0).astype(np.uint8)
    assert not np.array_equal(keep_largest_component(noisy), noisy), "the case must have components to remove"
    write_predict_folder(str(tmp_path / "pred"), str(tmp_path / "raw"), {"kid_003": (ct, probabilities)}, spacing)
    pkl = tmp_path / "postprocessing.pkl"
    run_step("nnunet_ppm", "postprocess", "--write-pp-pkl", str(pkl))
    run_step("nnUNetv2_apply_postprocessing", "-i", str(tmp_path / "pred"), "-o", str(tmp_path / "pp"),
         "-pp_pkl_file", str(pkl), "-np", "1")
    result = sitk.GetArrayFromImage(_read(tmp_path / "pp" / "kid_003.nii.gz"))
    assert np.array_equal(result, keep_largest_component(noisy))


def test_per_side_pkl_holds_the_axis(tmp_path):
    nnunet_ppm_main(["postprocess", "--write-pp-pkl", str(tmp_path / "pp.pkl"), "--lcc-mode", "per-side",
                     "--lr-axis", "0"])
    with open(tmp_path / "pp.pkl", "rb") as f:
        functions, kwargs = pickle.load(f)
    assert [f.__name__ for f in functions] == ["keep_largest_component_per_side"]
    assert kwargs == [{"lr_axis": 0}]
