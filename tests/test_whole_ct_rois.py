"""Whole-CT ROIs: the same boxes as `convert --roi`, exact pasting back with the overlap rule, volumes."""
import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.orientation import KITS_DIRECTION
from nnunet_ppm.dataset_conversion.roi import (CT_PAD_VALUE, Length, RoiWindow, crop_image, find_kidneys,
                                               kidney_rois)
from nnunet_ppm.localization.localizer import LocatedKidney, Localization
from nnunet_ppm.whole_ct.predict_ct import CtRecord, add_roi_step_seconds, roi_window_of
from nnunet_ppm.whole_ct.recall import roi_recall
from nnunet_ppm.whole_ct.rois import CtRoi, NO_OWNER, check_roi_prediction, paste_rois, rois_for, volumes_ml
from test_roi import as_image, two_kidney_label


@pytest.mark.parametrize("direction", [None, KITS_DIRECTION])
def test_rois_of_located_kidneys_are_the_boxes_convert_roi_crops(direction):
    label = as_image(two_kidney_label(), direction=direction)
    window = RoiWindow((Length(30, "voxels"), Length(24, "mm")), Length(4, "mm"))
    located = Localization("c", [LocatedKidney(k.side, k.bounds, 0.9) for k in find_kidneys(label)])
    ours = [(roi.side, roi.box, roi.enlarged) for roi in rois_for(located, label, window)]
    assert ours == [(roi.side, roi.box, roi.enlarged) for roi in kidney_rois(label, window, keep_healthy=True)]


def _roi(side, kidney_box, box):
    return CtRoi("c", side, box, kidney_box, False, None)


SHAPE, SPACING = (10, 20, 30), (2.0, 1.0, 1.0)
RIGHT = _roi("right", ((2, 8), (5, 15), (2, 10)), ((1, 9), (2, 18), (-3, 16)))  # sticks out at x < 0
LEFT = _roi("left", ((2, 8), (5, 15), (18, 28)), ((0, 10), (4, 20), (12, 33)))  # overlaps RIGHT at x 12..15


def _predictions(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.choice([0, 1, 2], p=[0.5, 0.3, 0.2], size=[b - a for a, b in roi.box]).astype(np.uint8)
            for roi in (RIGHT, LEFT)]


def _expected_voxel(z, y, x, predictions):
    """The documented rule, voxel by voxel: foreground beats background, then the nearer kidney box centre."""
    candidates = []
    for index, (roi, prediction) in enumerate(zip((RIGHT, LEFT), predictions)):
        if all(a <= v < b for v, (a, b) in zip((z, y, x), roi.box)):
            value = prediction[z - roi.box[0][0], y - roi.box[1][0], x - roi.box[2][0]]
            centre = [(a + b - 1) / 2 for a, b in roi.kidney_box]
            distance = np.linalg.norm((np.array([z, y, x]) - centre) * SPACING)
            if value:
                candidates.append((distance, index, value))
    return (0, NO_OWNER) if not candidates else (min(candidates)[2], min(candidates)[1])


def test_paste_back_follows_the_overlap_rule_voxel_by_voxel():
    predictions = _predictions()
    labels, owner = paste_rois(SHAPE, SPACING, [RIGHT, LEFT], predictions)
    for z, y, x in itertools.product(*map(range, SHAPE)):
        assert (labels[z, y, x], owner[z, y, x]) == _expected_voxel(z, y, x, predictions), (z, y, x)


def test_paste_back_equals_each_roi_outside_overlaps_and_is_background_outside_the_boxes():
    predictions = _predictions(1)
    labels, _ = paste_rois(SHAPE, SPACING, [RIGHT, LEFT], predictions)
    right_part = labels[1:9, 2:18, 0:12]  # RIGHT alone (x < 12)
    assert np.array_equal(right_part, predictions[0][:, :, 3:15])
    assert np.array_equal(labels[0:10, 4:20, 16:30], predictions[1][:, :, 4:18]), "LEFT alone (x >= 16)"
    outside = np.ones(SHAPE, bool)
    outside[1:9, 2:18, 0:16] = False
    outside[0:10, 4:20, 12:30] = False
    assert outside.any() and not labels[outside].any()


def test_overlaps_keep_foreground_and_give_shared_foreground_to_the_nearer_kidney():
    right = np.zeros([b - a for a, b in RIGHT.box], np.uint8)
    left = np.zeros([b - a for a, b in LEFT.box], np.uint8)
    right[:, :, 15:19] = 1  # RIGHT predicts kidney at x 12..15
    left[:, :, 0:2] = 2  # LEFT predicts tumor at x 12..13
    labels, owner = paste_rois(SHAPE, SPACING, [RIGHT, LEFT], [right, left])
    assert (labels[5, 10, 12:16] == 1).all(), "x 12, 13 are nearer RIGHT's kidney (centre x 5.5) than LEFT's (22.5)"
    left_only = np.zeros_like(right)
    labels, owner = paste_rois(SHAPE, SPACING, [RIGHT, LEFT], [left_only, left])
    assert (labels[5, 10, 12:14] == 2).all() and (owner[5, 10, 12:14] == 1).all(), "foreground beats background"


def test_volumes_count_each_voxel_for_the_roi_it_came_from():
    predictions = _predictions(2)
    labels, owner = paste_rois(SHAPE, SPACING, [RIGHT, LEFT], predictions)
    volumes = volumes_ml(labels, owner, [RIGHT, LEFT], SPACING, {"background": 0, "kidney": 1, "tumor": 2})
    voxel_ml = 2.0 / 1000
    for index, side in enumerate(("right", "left")):
        for name, value in (("kidney", 1), ("tumor", 2)):
            expected = ((labels == value) & (owner == index)).sum() * voxel_ml
            assert expected > 0 and volumes[side][name] == pytest.approx(expected, abs=5e-4), (side, name)  # 0.001 ml
    with pytest.raises(ValueError, match="c_right: prediction of shape"):
        paste_rois(SHAPE, SPACING, [RIGHT], [predictions[1]])


def test_roi_predictions_must_lie_on_their_box():
    ct = as_image(np.zeros(SHAPE, np.int16), spacing=(1.0, 1.0, 2.0), direction=KITS_DIRECTION)
    check_roi_prediction(crop_image(ct, RIGHT.box, CT_PAD_VALUE), RIGHT, ct)
    with pytest.raises(ValueError, match="c_right: ROI prediction has size .* needs size"):
        check_roi_prediction(crop_image(ct, LEFT.box, CT_PAD_VALUE), RIGHT, ct)


def test_roi_window_comes_from_the_models_dataset_json(tmp_path):
    (tmp_path / "dataset.json").write_text('{"nnunet_ppm": {"roi": {"in_plane": "110x100mm", "margin": "3"}}}')
    assert roi_window_of(tmp_path) == RoiWindow((Length(110, "mm"), Length(100, "mm")), Length(3, "voxels"))
    assert roi_window_of(tmp_path, roi_margin="5mm").margin == Length(5, "mm")
    (tmp_path / "dataset.json").write_text('{"nnunet_ppm": {"roi": null}}')
    with pytest.raises(ValueError, match="does not record an ROI window"):
        roi_window_of(tmp_path, roi_size="150")
    assert roi_window_of(tmp_path, "150", "10mm") == RoiWindow()


def test_recall_counts_each_kidneys_voxels_inside_the_box_of_its_side():
    label = two_kidney_label()
    image = as_image(label)
    right, left = find_kidneys(image)
    (z0, z1), (y0, y1), (x0, x1) = right.bounds
    cut = ((z0, z1), (y0, y1), (x0 + 3, x1 + 20))  # misses the right kidney's first 3 columns
    recalls = {r.side: r for r in roi_recall("c", image, {"right": cut})}
    right_voxels = label[z0:z1, y0:y1, x0:x1] > 0
    assert recalls["right"].found and recalls["right"].voxels == right_voxels.sum()
    assert recalls["right"].inside == right_voxels[:, :, 3:].sum() < right_voxels.sum()
    assert not recalls["left"].found and recalls["left"].inside == 0 and recalls["left"].fraction == 0
    kidney_box = (z1 - z0) * (y1 - y0) * (x1 - x0)
    assert recalls["right"].kidney_box_voxels == kidney_box
    assert recalls["right"].box_voxels == (z1 - z0) * (y1 - y0) * (min(x1 + 20, label.shape[2]) - x0 - 3)
    assert recalls["right"].box_over_kidney_box == recalls["right"].box_voxels / kidney_box
    assert np.isnan(recalls["left"].box_over_kidney_box)
    full = roi_recall("c", image, {k.side: k.bounds for k in (right, left)})
    assert {r.side: (r.fraction, r.box_over_kidney_box) for r in full} == {"right": (1.0, 1.0), "left": (1.0, 1.0)}



def test_each_ct_gets_the_step_seconds_of_its_rois_summed_and_an_untimed_roi_is_an_error(tmp_path):
    def record(case, *sides):
        return CtRecord(SimpleNamespace(case_id=case), None, [SimpleNamespace(roi_case=f"{case}_{s}") for s in sides],
                        {"cropping": 0.5})
    two_rois, no_roi, untimed = record("case_a", "right", "left"), record("case_b"), record("case_c", "right")
    add_roi_step_seconds([two_rois], tmp_path)
    assert two_rois.seconds == {"cropping": 0.5}, "no case_seconds.json (an untimed ROI prediction): nothing added"

    (tmp_path / "case_seconds.json").write_text(json.dumps({"case_a_right": {"sliding_window": 1.25, "crf": 0.5},
                                                            "case_a_left": {"sliding_window": 2.0, "crf": 0.25}}))
    add_roi_step_seconds([two_rois, no_roi], tmp_path)
    assert two_rois.seconds == {"cropping": 0.5, "roi_sliding_window": 3.25, "roi_crf": 0.75}
    assert no_roi.seconds == {"cropping": 0.5}
    with pytest.raises(ValueError, match="does not time ROI case_c_right of CT case_c"):
        add_roi_step_seconds([untimed], tmp_path)
