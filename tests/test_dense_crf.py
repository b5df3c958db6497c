"""Dense CRF: beats the argmax on a blurred noisy truth, leaves empty predictions empty, blocks, parameters."""
import json

import numpy as np
import pytest

from nnunet_ppm.postprocessing import dense_crf as dense_crf_module
from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_ppm.postprocessing.crf_regions import foreground_boxes, split_into_blocks
from nnunet_ppm.postprocessing.dense_crf import dense_crf
from synthetic_postprocessing_cases import dice, small_case


def test_crf_has_higher_dice_than_argmax_on_blurred_noisy_truth():
    truth, ct, probabilities, spacing = small_case()
    argmax = probabilities.argmax(0)
    refined = dense_crf(probabilities, ct, spacing)
    for label in (1, 2):
        assert dice(truth, refined, label) > dice(truth, argmax, label) + 0.05, f"label {label}"


def test_empty_prediction_stays_empty_without_running_the_crf(monkeypatch):
    def must_not_run(*args):
        raise AssertionError("the CRF must not run without foreground")

    monkeypatch.setitem(dense_crf_module.CRF_BACKENDS, "pydensecrf", must_not_run)
    probabilities = np.zeros((3, 6, 7, 8), np.float32)
    probabilities[0] = 1
    labels = dense_crf(probabilities, np.zeros((6, 7, 8), np.float32), (1.0, 1.0, 1.0))
    assert labels.dtype == np.uint8 and not labels.any()


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        dense_crf(np.ones((3, 4, 4, 4), np.float32) / 3, np.zeros((4, 4, 5), np.float32), (1, 1, 1))


def test_crf_runs_only_in_the_grown_foreground_box(monkeypatch):
    truth, ct, probabilities, spacing = small_case()
    padded = np.zeros((3, 96, 96, 96), np.float32)
    padded[0] = 1
    padded[:, 10:42, 20:76, 30:78] = probabilities
    blocks = []

    def spy(block_probabilities, block_image, block_spacing, params):
        blocks.append((block_probabilities, block_image))
        return np.full(block_image.shape, 2, np.uint8)  # marks where the CRF's labels are pasted back

    monkeypatch.setitem(dense_crf_module.CRF_BACKENDS, "pydensecrf", spy)
    image = np.full(padded.shape[1:], -80, np.float32)
    image[10:42, 20:76, 30:78] = ct
    labels = dense_crf(padded, image, spacing, CRFParams(margin_mm=4.0))
    foreground = np.argwhere(padded.argmax(0) != 0)
    margin = (2, 5, 5)  # 4 mm at (2.0, 0.8, 0.8) mm, rounded up
    box = tuple(slice(max(lo - m, 0), min(hi + 1 + m, n))
                for lo, hi, m, n in zip(foreground.min(0), foreground.max(0), margin, image.shape))
    assert len(blocks) == 1
    assert np.array_equal(blocks[0][0], padded[(slice(None), *box)])
    assert np.array_equal(blocks[0][1], np.clip(image[box], *CRFParams().hu_window))
    expected = padded.argmax(0)
    expected[box] = 2
    assert np.array_equal(labels, expected), "the CRF's labels inside the box, the argmax outside"


def test_blocks_give_almost_the_same_labels_as_one_box():
    truth, ct, probabilities, spacing = small_case()
    whole = dense_crf(probabilities, ct, spacing)
    blocked = dense_crf(probabilities, ct, spacing, CRFParams(max_block_voxels=20_000))
    assert np.mean(whole == blocked) > 0.995


def test_boxes_grow_by_margin_and_merge_when_they_overlap():
    mask = np.zeros((20, 20, 40), bool)
    mask[5:8, 5:8, 2:5] = True
    mask[5:8, 5:8, 8:11] = True   # grown boxes overlap: merged
    mask[5:8, 5:8, 30:33] = True  # far: its own box
    boxes = sorted(foreground_boxes(mask, (2, 2, 2)), key=lambda box: box[2].start)
    assert boxes == [(slice(3, 10), slice(3, 10), slice(0, 13)), (slice(3, 10), slice(3, 10), slice(28, 35))]
    assert foreground_boxes(np.zeros((5, 5, 5), bool), (2, 2, 2)) == []


def test_block_cores_tile_the_box_and_blocks_respect_the_limit():
    box = (slice(3, 53), slice(0, 40), slice(10, 41))
    pairs = split_into_blocks(box, max_voxels=12_000, overlap=(3, 2, 2))
    covered = np.zeros((60, 40, 41), int)
    for block, core in pairs:
        assert np.prod([s.stop - s.start for s in block]) <= 12_000
        assert all(b.start <= c.start and c.stop <= b.stop for b, c in zip(block, core))
        covered[core] += 1
    assert np.all(covered[box] == 1) and covered.sum() == 50 * 40 * 31
    assert split_into_blocks(box, 10 ** 9, (3, 2, 2)) == [(box, box)]


def test_params_json_round_trip_and_unknown_key(tmp_path):
    params = CRFParams(appearance_weight=7.5, hu_window=(-100.0, 400.0))
    params.to_json(str(tmp_path / "crf.json"), mean_dice=0.9)
    assert CRFParams.from_json(str(tmp_path / "crf.json")) == params
    (tmp_path / "bad.json").write_text(json.dumps({"appearance_wieght": 3}), encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json.*appearance_wieght"):
        CRFParams.from_json(str(tmp_path / "bad.json"))


def test_argmax_labels_slab_by_slab_equals_numpy(monkeypatch):
    from nnunet_ppm.postprocessing import argmax as argmax_module
    monkeypatch.setattr(argmax_module, "SLAB_VOXELS", 7)
    probabilities = np.random.default_rng(0).random((3, 5, 4, 3)).astype(np.float32)
    probabilities[:, 0, 0, 0] = (0.4, 0.4, 0.2)  # a tie goes to the lower class
    labels = argmax_module.argmax_labels(probabilities)
    assert labels.dtype == np.uint8 and np.array_equal(labels, probabilities.argmax(0))
