"""Every bad input of `evaluate`, `postprocess`, `plan`, `leaderboard` and `localize` is refused, naming the case or file,
what was expected and what was found; the inputs stay untouched (checksummed before and after).

The bad inputs of `convert` are in test_convert_inputs.py (BAD_INPUTS).
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from label_volumes import kidney_with_tumor, write_volume
from nnunet_ppm.cli import main
from synthetic_postprocessing_cases import small_case, write_predict_folder

SPACING = (2.0, 0.8, 0.8)


def checksums(*folders: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def rewrite_geometry(path: Path, origin=None, direction=None) -> None:
    image = sitk.ReadImage(str(path))
    if origin is not None:
        image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path))


FLIPPED = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


# ---------------------------------------------------------------- evaluate


def evaluate(tmp_path: Path) -> int:
    return main(["evaluate", "-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"),
                 "-o", str(tmp_path / "out"), "-np", "1"])


def with_value(array: np.ndarray, value) -> np.ndarray:
    changed = array.astype(np.float32 if isinstance(value, float) else np.int16)
    changed[0, 0, 0] = value
    return changed


# kind -> (reference array, prediction array, prediction geometry, error pattern)
EVALUATE_BAD_INPUTS = {
    "origin": ({}, {"origin": (5.0, 0.0, 0.0)}, r"case case_x: prediction does not lie on the reference's voxel "
                                                r"grid: origin \(5\.0, 0\.0, 0\.0\) instead of \(0\.0, 0\.0, 0\.0\)"),
    "direction": ({}, {"direction": FLIPPED}, r"case case_x: .*direction \(-1\.0, .*\) instead of \(1\.0, "),
    "fractional_label": ({}, {"value": 1.5}, r"case case_x: prediction .*case_x\.nii\.gz holds label values \[.*1\.5\], "
                                             r"expected only \[0, 1, 2\]"),
    "negative_label": ({"value": -1}, {}, r"case case_x: reference .*case_x\.nii\.gz holds label values \[-1\], "
                                          r"expected only \[0, 1, 2\]"),
}


@pytest.mark.parametrize("kind", sorted(EVALUATE_BAD_INPUTS))
def test_evaluate_refuses_bad_input(tmp_path, kind):
    reference_change, prediction_change, pattern = EVALUATE_BAD_INPUTS[kind]
    for folder, change in (("ref", reference_change), ("pred", prediction_change)):
        labels = kidney_with_tumor()
        if "value" in change:
            labels = with_value(labels, change["value"])
        path = write_volume(tmp_path / folder / "case_x.nii.gz", labels, SPACING)
        rewrite_geometry(path, change.get("origin"), change.get("direction"))
    before = checksums(tmp_path / "ref", tmp_path / "pred")
    with pytest.raises(ValueError, match=pattern):
        evaluate(tmp_path)
    assert checksums(tmp_path / "ref", tmp_path / "pred") == before
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_an_empty_prediction_folder(tmp_path, capsys):
    write_volume(tmp_path / "ref" / "case_x.nii.gz", kidney_with_tumor(), SPACING)
    (tmp_path / "pred").mkdir()
    with pytest.raises(ValueError, match=r"pred: expected label files with one of the endings .*, found none"):
        evaluate(tmp_path)
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0, "kidney": 1, "tumor": 2}, '
                                           '"file_ending": ".nii.gz"}')
    (tmp_path / "pred" / "dataset.json").write_text((tmp_path / "dataset.json").read_text())
    assert evaluate(tmp_path) == 1
    assert f"no .nii.gz files in {tmp_path / 'pred'}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- postprocess


def postprocess(tmp_path: Path, output: str = "out") -> int:
    return main(["postprocess", "-i", str(tmp_path / "pred"), "-r", str(tmp_path / "raw"),
                 "-o", str(tmp_path / output), "-np", "1", "--disable_progress_bar", "--no-crf"])


def save_probabilities(tmp_path: Path, change) -> None:
    npz = tmp_path / "pred" / "kid_x.npz"
    probabilities = np.load(npz)["probabilities"]
    np.savez_compressed(npz, probabilities=change(probabilities))


def with_nan(probabilities: np.ndarray) -> np.ndarray:
    probabilities[1, 3, 4, 5] = np.nan
    return probabilities


# kind -> (how to break the case kid_x of a predict folder, error pattern)
POSTPROCESS_BAD_INPUTS = {
    "origin": (lambda t: rewrite_geometry(t / "raw" / "kid_x_0000.nii.gz", origin=(0.0, 0.0, 0.0)),
               r"case kid_x: probabilities do not match the image: sitk_stuff\.origin: image has \(0\.0, 0\.0, 0\.0\), "
               r"probabilities were saved for \(10\.0, -20\.0, 30\.0\)"),
    "direction": (lambda t: rewrite_geometry(t / "raw" / "kid_x_0000.nii.gz", direction=FLIPPED),
                  r"case kid_x: probabilities do not match the image: sitk_stuff\.direction: image has \(-1\.0, "),
    "nan": (lambda t: save_probabilities(t, with_nan), r"case kid_x: .*kid_x\.npz holds 1 NaN/inf probabilities"),
    "not_summing_to_one": (lambda t: save_probabilities(t, lambda p: p * 0.5),
                           r"case kid_x: .*kid_x\.npz: the class probabilities of a voxel sum to 1 \+- 0\.5, expected 1"),
    "wrong_class_count": (lambda t: save_probabilities(t, lambda p: p[:2]),
                          r"case kid_x: .*kid_x\.npz holds probabilities of shape \(2, 32, 56, 48\), "
                          r"expected \(3, z, y, x\)"),
    "corrupt_npz": (lambda t: (t / "pred" / "kid_x.npz").write_bytes(b"PK\x03\x04 not a zip"),
                    r"case kid_x: cannot read .*kid_x\.npz: expected an \.npz with the array 'probabilities'"),
    "corrupt_pkl": (lambda t: (t / "pred" / "kid_x.pkl").write_bytes(b"\x80\x04 truncated"),
                    r"case kid_x: cannot read .*kid_x\.pkl: expected nnU-Net's pickled properties"),
}


@pytest.fixture
def predict_folder(tmp_path):
    _, ct, probabilities, spacing = small_case()
    write_predict_folder(str(tmp_path / "pred"), str(tmp_path / "raw"), {"kid_x": (ct, probabilities)}, spacing)
    return tmp_path


@pytest.mark.parametrize("kind", sorted(POSTPROCESS_BAD_INPUTS))
def test_postprocess_refuses_bad_input(predict_folder, kind):
    breaks, pattern = POSTPROCESS_BAD_INPUTS[kind]
    breaks(predict_folder)
    before = checksums(predict_folder / "pred", predict_folder / "raw")
    with pytest.raises(ValueError, match=pattern):
        postprocess(predict_folder)
    assert checksums(predict_folder / "pred", predict_folder / "raw") == before
    assert not (predict_folder / "out" / "kid_x.nii.gz").exists()


def test_postprocess_refuses_an_empty_input_folder(tmp_path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "raw").mkdir()
    with pytest.raises(FileNotFoundError, match=r"pred lacks \['dataset.json', 'plans.json'\]: expected a folder "
                                                r"written by nnUNetv2_predict"):
        postprocess(tmp_path)
    _, ct, probabilities, spacing = small_case()
    write_predict_folder(str(tmp_path / "pred"), str(tmp_path / "raw"), {"kid_x": (ct, probabilities)}, spacing)
    for name in ("kid_x.npz", "kid_x.pkl", "kid_x.nii.gz"):
        os.remove(tmp_path / "pred" / name)
    with pytest.raises(FileNotFoundError, match=r"pred holds no predicted case \(no \.npz probabilities, no \.nii\.gz "
                                                r"segmentation\)"):
        postprocess(tmp_path)
    assert not (tmp_path / "out").exists()


def test_postprocess_refuses_to_write_into_its_input(predict_folder):
    before = checksums(predict_folder / "pred")
    (predict_folder / "link_to_pred").symlink_to(predict_folder / "pred")
    for output in ("pred", "pred/", "link_to_pred"):
        with pytest.raises(SystemExit, match="-o must differ from -i"):
            postprocess(predict_folder, output)
    assert checksums(predict_folder / "pred") == before


# ---------------------------------------------------------------- plan, leaderboard


def test_plan_and_leaderboard_refuse_a_dataset_id_that_does_not_exist(nnunet_dirs, capsys):
    assert main(["plan", "-d", "777", "--no-preprocess"]) == 1
    assert "nnunet_ppm plan: dataset '777': Could not find a dataset with the ID 777" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="nnunet_ppm leaderboard: dataset '777': Could not find a dataset with the "
                                         "ID 777"):
        main(["leaderboard", "-d", "777"])
    with pytest.raises(SystemExit, match=r"nnunet_ppm leaderboard: Dataset778_Missing: no reference labels found"):
        main(["leaderboard", "-d", "Dataset778_Missing"])
    assert all(not any(folder.iterdir()) for folder in nnunet_dirs.values()), "nothing written"


# ---------------------------------------------------------------- localize


def test_localize_refuses_a_coarse_model_whose_labels_are_not_kidney_and_tumor(tmp_path):
    model = tmp_path / "Dataset501_Liver" / "nnUNetTrainer__nnUNetPlans__3d_lowres"
    model.mkdir(parents=True)
    (model / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1, "tumor": 2},
                                                    "channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}))
    (tmp_path / "cts").mkdir()
    write_volume(tmp_path / "cts" / "ct_0000.nii.gz", kidney_with_tumor().astype(np.int16))
    before = checksums(tmp_path)
    with pytest.raises(SystemExit) as refused:
        main(["localize", "-i", str(tmp_path / "cts"), "-o", str(tmp_path / "boxes.json"), "--coarse-model", str(model),
              "-device", "cpu"])
    assert refused.value.code == (f"nnunet_ppm localize: {model / 'dataset.json'}: the coarse model must predict kidney 1 "
                                  f"and tumor 2 (the labels of `nnunet_ppm convert`); its labels are "
                                  f"{{'background': 0, 'liver': 1, 'tumor': 2}}")
    assert checksums(tmp_path) == before and not (tmp_path / "boxes.json").exists()
