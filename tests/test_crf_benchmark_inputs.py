"""benchmarks/postprocessing_speed.py's "trained" input: predict-ct's least confident kept ROI, resampled to the
benchmark's ROI size over the same field of view."""
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import postprocessing_speed  # noqa: E402  (a script folder, not a package)


def test_the_trained_input_is_the_least_confident_roi_resampled_over_its_field_of_view(tmp_path):
    rois, shape = tmp_path / "rois", (10, 15, 12)
    (rois / "images").mkdir(parents=True)
    (rois / "predictions").mkdir()
    for name, confidence in (("case_a_left", 0.95), ("case_b_right", 0.6)):
        probabilities = np.full((3, *shape), (1 - confidence) / 2, np.float32)
        probabilities[0] = confidence
        np.savez(rois / "predictions" / f"{name}.npz", probabilities=probabilities)
        image = sitk.GetImageFromArray(np.full(shape, 40, np.int16))
        image.SetSpacing((4.0, 4.5, 6.0))
        sitk.WriteImage(image, str(rois / "images" / f"{name}_0000.nii.gz"))
    ct, probabilities, spacing, name = postprocessing_speed.trained_roi(rois)
    assert name == "case_b_right"
    assert ct.shape == postprocessing_speed.ROI_SHAPE and np.allclose(ct, 40)
    assert probabilities.shape == (3, *postprocessing_speed.ROI_SHAPE)
    assert np.allclose(probabilities.sum(0), 1) and np.allclose(probabilities[0], 0.6)
    assert spacing == pytest.approx((6.0 * 10 / 200, 4.5 * 15 / 150, 4.0 * 12 / 150))


def test_the_trained_input_names_the_folder_without_probabilities(tmp_path):
    (tmp_path / "predictions").mkdir()
    with pytest.raises(SystemExit, match="no probability files"):
        postprocessing_speed.trained_roi(tmp_path)
