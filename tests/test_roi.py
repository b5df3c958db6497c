"""Per-kidney ROI boxes and cropping (paper section II): every kidney voxel inside, sides by anatomy, exact mapping."""
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.orientation import KITS_DIRECTION
from nnunet_ppm.dataset_conversion.roi import (Length, RoiWindow, crop_array, crop_image, find_kidneys, kidney_map,
                                               kidney_rois, parse_in_plane_size, parse_length)


def blob(shape, centre, radii):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2 <= 1


def two_kidney_label(shape=(30, 60, 80)):
    """Kidney at small x with a tumor and a detached tumor speck; healthy kidney at large x."""
    label = np.zeros(shape, np.uint8)
    label[blob(shape, (15, 30, 18), (8, 10, 7))] = 1
    label[blob(shape, (15, 30, 11), (3, 3, 3))] = 2
    label[12:14, 8:10, 4:6] = 2  # detached speck, nearest to the small-x kidney
    label[blob(shape, (14, 32, 62), (9, 11, 7))] = 1
    return label


def as_image(array, spacing=(0.8, 0.8, 3.0), direction=None):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    if direction is not None:
        image.SetDirection(direction)
    return image


def test_kidney_map_groups_fragments_with_the_nearest_kidney():
    label = two_kidney_label()
    kidneys, count = kidney_map(label, (3.0, 0.8, 0.8))
    assert count == 2
    assert np.unique(kidneys).tolist() == [0, 1, 2]
    assert kidneys[12, 8, 4] == kidneys[15, 30, 18] == 3 - kidneys[14, 32, 62], "the speck joins the small-x kidney"
    assert np.array_equal(kidneys > 0, label > 0)


def test_a_kidney_mostly_replaced_by_tumor_is_still_a_kidney():
    label = two_kidney_label()
    label[blob(label.shape, (14, 32, 62), (9, 11, 7))] = 2
    label[14, 32, 68] = 1  # a few kidney voxels left at the rim
    assert kidney_map(label, (3.0, 0.8, 0.8))[1] == 2
    assert [k.has_tumor for k in find_kidneys(as_image(label))] == [True, True]


def test_sides_come_from_physical_coordinates_not_image_halves():
    label = two_kidney_label()
    axial = {k.side: k for k in find_kidneys(as_image(label))}
    assert axial["right"].bounds[2][1] <= 40 < axial["left"].bounds[2][0], "x grows towards the patient's left"
    flipped = {k.side: k for k in find_kidneys(as_image(label, direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1)))}
    assert flipped["left"].bounds == axial["right"].bounds, "with x flipped in the header the sides swap"
    assert axial["right"].has_tumor and not axial["left"].has_tumor


def test_single_kidney_side_is_relative_to_the_image_centre():
    label = two_kidney_label()
    label[:, :, 40:] = 0
    assert [k.side for k in find_kidneys(as_image(label))] == ["right"]


def test_a_single_kidney_is_sided_against_the_patients_midline_when_the_ct_is_given():
    label = two_kidney_label()
    label[:, :, 40:] = 0  # one kidney, centred at x = 18 of 80: in the image's right half (LPS x to the left)
    ct = np.full(label.shape, -1000, np.int16)
    ct[:, 5:55, 0:31] = 40  # a patient lying against the image's edge: the body's middle at x = 15
    kidneys = find_kidneys(as_image(label), as_image(ct))
    assert [k.side for k in kidneys] == ["left"], "x = 18 lies to the patient's left of their midline at x = 15"
    assert [roi.side for roi in kidney_rois(as_image(label), keep_healthy=True, ct=as_image(ct))] == ["left"]
    assert [k.side for k in find_kidneys(as_image(label), as_image(np.full(label.shape, -1000, np.int16)))] == \
        ["right"], "no body in the CT: the image's centre decides, as without a CT"


def test_boxes_hold_every_voxel_of_their_kidney_and_only_tumor_kidneys_by_default():
    label = two_kidney_label()
    image = as_image(label)
    window = RoiWindow((Length(30, "voxels"), Length(30, "voxels")), Length(2, "voxels"))
    assert [roi.side for roi in kidney_rois(image, window)] == ["right"]
    rois = kidney_rois(image, window, keep_healthy=True)
    kidneys, _ = kidney_map(label, (3.0, 0.8, 0.8))
    for roi in rois:
        index = kidneys[15, 30, 18] if roi.side == "right" else kidneys[14, 32, 62]
        voxels = np.argwhere(kidneys == index)
        for axis, (start, stop) in enumerate(roi.box):
            assert start <= voxels[:, axis].min() and voxels[:, axis].max() < stop
        (z0, z1), _, (x0, x1) = roi.box
        assert x1 - x0 == 30, "in-plane window"
        assert z0 == voxels[:, 0].min() - 2 and z1 == voxels[:, 0].max() + 1 + 2, "all slices plus margin"
    right, left = rois
    assert not left.enlarged and left.box[1][1] - left.box[1][0] == 30
    assert right.enlarged and right.box[1] == (8, 41), "the speck at y=8 widened the box beyond the window"


def test_window_and_margin_in_mm_follow_the_spacing():
    label = two_kidney_label()
    window = RoiWindow((Length(24, "mm"), Length(20, "mm")), Length(7, "mm"))
    roi = kidney_rois(as_image(label), window, keep_healthy=True)[1]  # left, healthy
    (z0, z1), (y0, y1), (x0, x1) = roi.box
    assert (y1 - y0, x1 - x0) == (30, 25) and not roi.enlarged, "24 mm and 20 mm at 0.8 mm"
    bounds = find_kidneys(as_image(label))[1].bounds
    assert (z0, z1) == (bounds[0][0] - 3, bounds[0][1] + 3), "7 mm at 3 mm slices rounds up to 3 slices"


def test_slice_axis_of_kits_files_gets_the_margin():
    label = two_kidney_label()  # canonical (z, y, x); a KiTS file stores it as (x, y, -z)
    kits_array = np.ascontiguousarray(np.flip(np.transpose(label, (2, 1, 0)), 2))
    roi = kidney_rois(as_image(kits_array, spacing=(3.0, 0.8, 0.8), direction=KITS_DIRECTION),
                      RoiWindow((Length(40, "voxels"), Length(30, "voxels")), Length(1, "voxels")), keep_healthy=True)[0]
    (a0, a1), (b0, b1), (c0, c1) = roi.box
    assert (b1 - b0, a1 - a0) == (40, 30), "anterior-posterior is array axis 1, left-right array axis 0 in KiTS"
    slices = np.flatnonzero(kits_array[a0:a1, b0:b1].any((0, 1)))
    assert (c0, c1) == (slices.min() - 1, slices.max() + 2)


def test_crop_pads_outside_the_image_and_keeps_physical_positions():
    image = as_image(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6), spacing=(0.5, 0.7, 2.0),
                     direction=KITS_DIRECTION)
    image.SetOrigin((10.0, -20.0, 5.0))
    box = ((-2, 3), (1, 4), (4, 9))
    cropped = crop_image(image, box, -1024)
    array, source = sitk.GetArrayViewFromImage(cropped), sitk.GetArrayViewFromImage(image)
    assert array.shape == (5, 3, 5)
    assert np.all(array[:2] == -1024) and np.all(array[:, :, 2:] == -1024)
    assert np.array_equal(array[2:, :, :2], source[0:3, 1:4, 4:6])
    for roi_index, source_index in (((0, 0, 0), (4, 1, -2)), ((4, 2, 1), (8, 3, -1))):  # SimpleITK (x, y, z) order
        assert cropped.TransformIndexToPhysicalPoint(roi_index) == pytest.approx(image.TransformIndexToPhysicalPoint(source_index))
    assert cropped.GetSpacing() == image.GetSpacing() and cropped.GetDirection() == image.GetDirection()
    assert crop_array(source, ((0, 4), (0, 5), (0, 6)), 0).tolist() == source.tolist()


@pytest.mark.parametrize("text, expected", [("150", (150, 150, "voxels")), ("150x120", (150, 120, "voxels")),
                                            ("110mm", (110, 110, "mm")), ("110 x 95.5 mm", (110, 95.5, "mm"))])
def test_roi_size_syntax(text, expected):
    first, second = parse_in_plane_size(text)
    assert (first.value, second.value, first.unit) == expected and first.unit == second.unit


@pytest.mark.parametrize("bad", ["", "abc", "0", "150x", "-5", "12cm"])
def test_bad_roi_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="ROI size"):
        parse_in_plane_size(bad)


def test_lengths():
    assert parse_length("4") == Length(4, "voxels") and parse_length("10mm") == Length(10, "mm")
    assert Length(10, "mm").voxels(3.0, round_up=True) == 4 and Length(10, "mm").voxels(3.0) == 3
    with pytest.raises(ValueError, match="length"):
        parse_length("ten")
