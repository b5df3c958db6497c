"""Largest 18-connected kidney+tumor component: connectivity, labels, empty input, per-side rule, real KiTS labels."""
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.postprocessing.largest_component import (body_midline, keep_largest_component,
                                                          keep_largest_component_per_side, left_right_axis)


def _kidney_block(shape=(12, 12, 12)) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[2:7, 2:7, 2:7] = 1
    labels[4:7, 4:7, 4:7] = 2
    return labels


def test_component_joined_only_at_a_corner_is_removed():
    labels = _kidney_block()
    labels[7, 7, 7] = 1  # shares only the corner (6, 6, 6)
    kept = keep_largest_component(labels)
    assert kept[7, 7, 7] == 0
    assert np.array_equal(kept[:7, :7, :7], labels[:7, :7, :7])


def test_component_joined_along_an_edge_is_kept():
    labels = _kidney_block()
    labels[7, 7, 5] = 2  # shares the edge between (6, 6, 5) and its neighbours along x
    kept = keep_largest_component(labels)
    assert np.array_equal(kept, labels)


def test_isolated_false_positive_far_from_kidney_is_removed_and_labels_kept():
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[5:15, 5:15, 5:15] = 1
    labels[8:12, 8:12, 8:12] = 2
    labels[30:33, 30:33, 30:33] = 2  # tumor-labelled false positive
    kept = keep_largest_component(labels)
    assert not kept[30:33, 30:33, 30:33].any()
    assert np.array_equal(kept[:20, :20, :20], labels[:20, :20, :20])
    assert labels[30, 30, 30] == 2, "the input must not be modified"


def test_empty_prediction_stays_empty():
    empty = np.zeros((8, 9, 10), np.uint8)
    assert not keep_largest_component(empty).any()
    assert not keep_largest_component_per_side(empty, lr_axis=2).any()


def test_per_side_keeps_one_kidney_per_side_and_drops_smaller_parts():
    labels = np.zeros((30, 30, 60), np.uint8)
    labels[10:20, 10:20, 5:15] = 1   # right kidney (low x)
    labels[12:18, 12:18, 8:12] = 2
    labels[10:18, 10:18, 45:52] = 1  # left kidney, smaller
    labels[2:4, 2:4, 2:4] = 1        # false positives on either side
    labels[26:28, 26:28, 55:57] = 2
    kept = keep_largest_component_per_side(labels, lr_axis=2)
    expected = labels.copy()
    expected[2:4, 2:4, 2:4] = 0
    expected[26:28, 26:28, 55:57] = 0
    assert np.array_equal(kept, expected)
    assert keep_largest_component(labels)[10:18, 10:18, 45:52].sum() == 0, "ROI rule keeps only one kidney"


def test_per_side_splits_at_the_body_midline_so_an_off_centre_patient_keeps_both_kidneys():
    """A body (soft tissue in air) lying far right in the image, both kidneys left of the image's middle: split at
    the image's middle, one side would hold both and lose the smaller; split at the body's midline, both stay."""
    ct = np.full((30, 40, 120), -1000.0)
    ct[2:28, 5:35, 4:56] = 40.0  # the body: x 4-55, midline at x 29.5
    ct[10:12, 5:35, 100:110] = 200.0  # a small object outside the body (a calibration phantom): not the midline
    labels = np.zeros(ct.shape, np.uint8)
    labels[10:20, 15:25, 10:22] = 1  # right kidney
    labels[10:18, 15:23, 38:48] = 1  # left kidney, smaller
    labels[25:27, 30:32, 50:52] = 2  # a false positive on the left
    midline = body_midline(ct, lr_axis=2)
    assert abs(midline - 29.5) <= 2, midline
    assert keep_largest_component_per_side(labels, lr_axis=2)[10:18, 15:23, 38:48].sum() == 0, "image middle"
    expected = labels.copy()
    expected[25:27, 30:32, 50:52] = 0
    assert np.array_equal(keep_largest_component_per_side(labels, lr_axis=2, midline=midline), expected)
    assert body_midline(np.full((8, 8, 8), -1000.0), lr_axis=2) == 3.5, "no body: the image's middle"


def test_left_right_axis_from_direction():
    assert left_right_axis((1, 0, 0, 0, 1, 0, 0, 0, 1)) == 2
    # KiTS19 stores the slice axis first in index space: x is index axis 2, i.e. array axis 0
    assert left_right_axis((0, 0, 1, 0, 1, 0, -1, 0, 0)) == 0


def test_per_side_on_real_kits19_labels_keeps_both_kidneys(kits19_labels_dir):
    image = sitk.ReadImage(str(kits19_labels_dir / "case_00003.nii.gz"))
    labels = sitk.GetArrayFromImage(image)
    reference = labels.copy()
    lr_axis = left_right_axis(image.GetDirection())
    far_corner = (slice(0, 4),) * 3
    assert not labels[far_corner].any()
    labels[far_corner] = 1
    kept = keep_largest_component_per_side(labels, lr_axis)
    assert np.array_equal(kept, reference)
