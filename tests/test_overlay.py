"""Overlay pictures: which slices, which part of the plane, and an image that does not fit its labels."""
import numpy as np
import pytest

from label_volumes import kidney_with_tumor, synthetic_ct, write_volume
from nnunet_ppm.evaluation.labels import LabelScheme
from nnunet_ppm.evaluation.overlay import in_plane_box, overlay_case, representative_slices


def test_representative_slices_spread_over_the_kidney_and_include_the_largest_tumor_slice():
    labels = np.zeros((40, 10, 10), np.uint8)
    labels[10:31, 2:8, 2:8] = 1
    labels[12:15, 3:6, 3:6] = 2
    labels[13, 3:7, 3:7] = 2  # the slice with most tumor
    assert representative_slices(labels, (2,), count=3) == [13, 20, 25]  # spread 15, 20, 25; 15 -> 13
    assert representative_slices(np.zeros((9, 4, 4)), (2,)) == [4]
    assert len(representative_slices(labels[10:12], (2,), count=3)) == 2  # two labelled slices only


def test_in_plane_box_adds_the_margin_in_mm_and_stays_inside_the_image():
    labels = np.zeros((3, 100, 100), np.uint8)
    labels[1, 40:50, 90:95] = 1
    rows, columns = in_plane_box([labels, np.zeros_like(labels)], (0.5, 2.0), margin_mm=10.0)
    assert (rows, columns) == (slice(20, 70), slice(85, 100))
    assert in_plane_box([labels], (0.5, 2.0), margin_mm=None) == (slice(None), slice(None))


def test_image_of_another_shape_is_an_error_naming_the_case(tmp_path):
    labels = kidney_with_tumor()
    write_volume(tmp_path / "ct.nii.gz", synthetic_ct(labels[:, :-2]))
    write_volume(tmp_path / "ref.nii.gz", labels)
    with pytest.raises(ValueError, match="case case_9: reference label map .* has shape"):
        overlay_case("case_9", tmp_path / "ct.nii.gz", tmp_path / "ref.nii.gz", {}, tmp_path / "o.png", LabelScheme())
    assert not (tmp_path / "o.png").exists()
