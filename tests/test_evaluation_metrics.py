"""Metrics against independent hand computations on crafted volumes, and the KiTS Surface Dice against
geometry and DeepMind's surface-distance package (the code KiTS21/23 evaluate with)."""
import itertools

import numpy as np
import pytest
import surface_distance
from scipy import ndimage
from scipy.spatial.distance import cdist

from nnunet_ppm.evaluation.metrics import (case_metrics, structure_metrics, surface_dice, surface_distances,
                                           tumor_detection)
from nnunet_ppm.evaluation.surface_dice import KITS_TOLERANCES_MM, tolerance_mm

KIDNEY_TOLERANCE = 1.0330772532390826  # KiTS21/23 kidney+masses tolerance (mm)


def box_mask(shape, low, high):
    """Boolean mask of the voxels with low <= index <= high on every axis (inclusive bounds)."""
    grid = np.indices(shape)
    return np.all([(grid[a] >= low[a]) & (grid[a] <= high[a]) for a in range(3)], axis=0)


def box_surface_coordinates(low, high):
    """Voxel coordinates of a box's shell: at least one coordinate on a face."""
    coords = np.stack(np.meshgrid(*[np.arange(l, h + 1) for l, h in zip(low, high)], indexing="ij"), -1).reshape(-1, 3)
    on_face = np.any((coords == np.array(low)) | (coords == np.array(high)), axis=1)
    return coords[on_face]


def nested_boxes_by_hand(outer, inner, spacing):
    """Directed surface distances (outer->inner, inner->outer) of two nested boxes, from geometry alone.

    inner -> outer: an inner voxel's nearest outer-shell voxel is its projection onto the nearest face,
    so the distance is min over axes of the distance to that axis' nearer face.
    outer -> inner: the nearest inner-shell voxel of an outside point is its nearest point of the inner box.
    """
    spacing = np.asarray(spacing, dtype=float)
    (outer_low, outer_high), (inner_low, inner_high) = outer, inner
    inner_shell = box_surface_coordinates(inner_low, inner_high)
    to_nearest_face = np.minimum(inner_shell - np.array(outer_low), np.array(outer_high) - inner_shell) * spacing
    inner_to_outer = to_nearest_face.min(axis=1)
    outer_shell = box_surface_coordinates(outer_low, outer_high)
    gap = np.maximum(np.maximum(np.array(inner_low) - outer_shell, outer_shell - np.array(inner_high)), 0) * spacing
    outer_to_inner = np.sqrt((gap ** 2).sum(axis=1))
    # the inner box touches the outer shell nowhere, so every inner-shell voxel of the outer box is interior
    return outer_to_inner, inner_to_outer


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.7, 0.9)])
def test_nested_cubes_match_geometry(spacing):
    shape = (20, 20, 20)
    outer, inner = ((5, 5, 5), (14, 14, 14)), ((7, 7, 7), (12, 12, 12))
    reference, prediction = box_mask(shape, *outer), box_mask(shape, *inner)
    outer_to_inner_mm, inner_to_outer_mm = nested_boxes_by_hand(outer, inner, spacing)
    outer_to_inner_vox, inner_to_outer_vox = nested_boxes_by_hand(outer, inner, (1, 1, 1))
    n_surface = 10 ** 3 - 8 ** 3 + 6 ** 3 - 4 ** 3  # 488 + 152

    metrics = structure_metrics(reference, prediction, spacing, KIDNEY_TOLERANCE)

    assert metrics.dice == pytest.approx(2 * 6 ** 3 / (10 ** 3 + 6 ** 3))
    assert len(outer_to_inner_mm) + len(inner_to_outer_mm) == n_surface
    assert metrics.mssd_voxels == pytest.approx((outer_to_inner_vox.sum() + inner_to_outer_vox.sum()) / n_surface)
    assert metrics.mssd_mm == pytest.approx((outer_to_inner_mm.sum() + inner_to_outer_mm.sum()) / n_surface)
    assert metrics.hd95_mm == pytest.approx(max(np.percentile(outer_to_inner_mm, 95),
                                                np.percentile(inner_to_outer_mm, 95)))
    voxel_ml = np.prod(spacing) / 1000
    assert metrics.volume_reference_ml == pytest.approx(1000 * voxel_ml)
    assert metrics.volume_prediction_ml == pytest.approx(216 * voxel_ml)
    assert metrics.volume_difference_ml == pytest.approx((216 - 1000) * voxel_ml)


def test_nested_cubes_isotropic_mssd_by_counting():
    # outer cube 5..14, inner 7..12. Per axis an outer coordinate is 0 (7..12: 6 values), 1 (6, 13: 2 values)
    # or 2 (5, 14: 2 values) voxels outside the inner box; outer-shell voxels have at least one 2.
    # Every inner-shell voxel (6^3 - 4^3 = 152) is exactly 2 from the outer shell.
    count = {0: 6, 1: 2, 2: 2}
    gaps = [g for g in itertools.product(count, repeat=3) if 2 in g]
    outer_shell_sum = sum(count[a] * count[b] * count[c] * np.sqrt(a * a + b * b + c * c) for a, b, c in gaps)
    assert sum(count[a] * count[b] * count[c] for a, b, c in gaps) == 488
    reference, prediction = box_mask((20,) * 3, (5,) * 3, (14,) * 3), box_mask((20,) * 3, (7,) * 3, (12,) * 3)
    mssd_voxels, mssd_mm, hd95_mm = surface_distances(reference, prediction, (1, 1, 1))
    assert mssd_voxels == mssd_mm == pytest.approx((outer_shell_sum + 152 * 2) / (488 + 152))  # 2.21897
    # outer shell sorted: ..., 72 at sqrt(8) (gaps 2,2,0), 24 at 3 (2,2,1; ranks 456-479), 8 at sqrt(12);
    # the 95th percentile sits at rank 0.95 * 487 = 462.65, inside the 3s; the inner side is all 2s
    assert hd95_mm == pytest.approx(3.0)


def test_shifted_cube_dice_and_identical_masks():
    shape = (20, 20, 20)
    reference = box_mask(shape, (5, 5, 5), (14, 14, 14))
    shifted = box_mask(shape, (5, 5, 8), (14, 14, 17))
    assert structure_metrics(reference, shifted, (1, 1, 1), KIDNEY_TOLERANCE).dice == pytest.approx(2 * 700 / 2000)
    same = structure_metrics(reference, reference, (2.0, 1.0, 1.0), KIDNEY_TOLERANCE)
    assert (same.dice, same.mssd_voxels, same.mssd_mm, same.hd95_mm, same.volume_difference_ml) == (1, 0, 0, 0, 0)
    assert same.surface_dice == 1


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.8, 0.8)])
def test_concentric_spheres_are_radius_difference_apart(spacing):
    shape = (40, 64, 64)
    position_mm = np.stack(np.indices(shape), -1) * np.array(spacing)
    centre_mm = (np.array(shape) - 1) / 2 * np.array(spacing)
    radius = np.linalg.norm(position_mm - centre_mm, axis=-1)
    reference, prediction = radius <= 18.0, radius <= 12.0
    metrics = structure_metrics(reference, prediction, spacing, KIDNEY_TOLERANCE)
    # the digital surfaces' exact distances: nearest surface voxel of the other sphere, each way
    reference_surface, prediction_surface = (np.argwhere(brute_force_surface(mask)) * spacing
                                             for mask in (reference, prediction))
    pairwise = cdist(reference_surface, prediction_surface)  # about 3400 x 1500
    inward, outward = pairwise.min(axis=1), pairwise.min(axis=0)
    assert metrics.mssd_mm == pytest.approx((outward.sum() + inward.sum()) / (outward.size + inward.size))
    assert metrics.hd95_mm == pytest.approx(max(np.percentile(outward, 95), np.percentile(inward, 95)))
    # ... and they lie within about a voxel of the true spheres, 6 mm apart
    assert abs(metrics.mssd_mm - 6.0) < max(spacing) and abs(metrics.hd95_mm - 6.0) < max(spacing)
    assert metrics.dice == pytest.approx(2 * prediction.sum() / (reference.sum() + prediction.sum()))
    voxel_ml = np.prod(spacing) / 1000
    assert metrics.volume_reference_ml == pytest.approx(reference.sum() * voxel_ml)
    assert metrics.volume_prediction_ml == pytest.approx(prediction.sum() * voxel_ml)
    assert metrics.volume_reference_ml == pytest.approx(4 / 3 * np.pi * 18 ** 3 / 1000, rel=0.005)  # 0.15 % off


def brute_force_surface(mask):
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1, 1:-1]
    neighbours_inside = [np.roll(padded, shift, axis)[1:-1, 1:-1, 1:-1] for axis in range(3) for shift in (-1, 1)]
    return inner & ~np.logical_and.reduce(neighbours_inside)


def test_random_shapes_match_brute_force_pairwise_distances():
    rng = np.random.default_rng(3)
    spacing = np.array([2.5, 0.7, 1.1])
    for _ in range(3):
        reference = rng.random((9, 12, 11)) < 0.3
        prediction = rng.random((9, 12, 11)) < 0.3
        reference[0, 0, 0] = prediction[-1, -1, -1] = True  # touch the image border
        ref_points = np.argwhere(brute_force_surface(reference))
        pred_points = np.argwhere(brute_force_surface(prediction))
        n_points = len(ref_points) + len(pred_points)
        voxels = cdist(ref_points, pred_points)
        mm = cdist(ref_points * spacing, pred_points * spacing)

        mssd_voxels, mssd_mm, hd95_mm = surface_distances(reference, prediction, spacing)

        assert mssd_voxels == pytest.approx((voxels.min(axis=1).sum() + voxels.min(axis=0).sum()) / n_points)
        assert mssd_mm == pytest.approx((mm.min(axis=1).sum() + mm.min(axis=0).sum()) / n_points)
        assert hd95_mm == pytest.approx(max(np.percentile(mm.min(axis=1), 95), np.percentile(mm.min(axis=0), 95)))


def test_empty_masks_follow_the_documented_rules():
    shape, spacing = (10, 20, 30), (2.0, 1.0, 1.0)
    empty, cube = np.zeros(shape, bool), box_mask(shape, (2, 2, 2), (5, 5, 5))
    both_empty = structure_metrics(empty, empty, spacing, KIDNEY_TOLERANCE)
    assert (both_empty.dice, both_empty.mssd_voxels, both_empty.mssd_mm, both_empty.hd95_mm) == (1, 0, 0, 0)
    assert both_empty.surface_dice == 1  # KiTS: both empty -> 1
    diagonal_voxels, diagonal_mm = np.sqrt(9 ** 2 + 19 ** 2 + 29 ** 2), np.sqrt(18 ** 2 + 19 ** 2 + 29 ** 2)
    for reference, prediction in ((empty, cube), (cube, empty)):
        one_empty = structure_metrics(reference, prediction, spacing, KIDNEY_TOLERANCE)
        assert one_empty.dice == 0 and one_empty.surface_dice == 0  # KiTS: exactly one empty -> 0
        assert one_empty.mssd_voxels == pytest.approx(diagonal_voxels)
        assert (one_empty.mssd_mm, one_empty.hd95_mm) == (pytest.approx(diagonal_mm), pytest.approx(diagonal_mm))
        assert all(np.isfinite(list(one_empty.as_dict().values())))


def test_tumor_detection_outcomes():
    shape = (10, 10, 10)
    empty, tumor, elsewhere = np.zeros(shape, bool), box_mask(shape, (1,) * 3, (3,) * 3), box_mask(shape, (6,) * 3, (8,) * 3)
    assert tumor_detection(tumor, tumor | elsewhere) == "TP"
    assert tumor_detection(tumor, elsewhere) == "FN"  # a tumor found in the wrong place misses the real one
    assert tumor_detection(tumor, empty) == "FN"
    assert tumor_detection(empty, elsewhere) == "FP"
    assert tumor_detection(empty, empty) == "TN"


def test_case_metrics_on_a_large_image_equal_the_whole_image_metrics():
    # objects far from the border: case_metrics crops; the empty-mask penalty still uses the whole image
    shape, spacing = (60, 80, 80), (3.0, 0.8, 0.8)
    reference, prediction = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    reference[box_mask(shape, (20, 30, 30), (35, 50, 50))] = 1
    reference[box_mask(shape, (25, 35, 35), (30, 40, 40))] = 2
    prediction[box_mask(shape, (21, 31, 29), (36, 49, 50))] = 1
    prediction[box_mask(shape, (26, 36, 36), (30, 41, 41))] = 3
    structures = {"kidney": (1,), "tumor": (2,), "kidney_tumor": (1, 2), "kidney_masses": (1, 2, 3), "masses": (2, 3)}
    results, detection = case_metrics(reference, prediction, spacing, structures, tumor_values=(2,))
    for name, values in structures.items():
        expected = structure_metrics(np.isin(reference, values), np.isin(prediction, values), spacing,
                                     tolerance_mm(name))
        assert results[name] == expected, name
    assert results["tumor"].dice == 0 and results["tumor"].mssd_mm == pytest.approx(
        np.sqrt((59 * 3.0) ** 2 + 2 * (79 * 0.8) ** 2))
    assert detection == "FN"


# --- KiTS21/23 Surface Dice -------------------------------------------------------------------------------------


def test_kits_tolerances_are_the_official_values():
    # HEC_SD_TOLERANCES_MM of kits23/configuration/labels.py (github.com/neheller/kits23), as in final KiTS21
    assert KITS_TOLERANCES_MM == {"kidney_and_mass": 1.0330772532390826, "mass": 1.1328796488598762,
                                  "tumor": 1.1498198361434828}
    assert {name: tolerance_mm(name) for name in ("kidney", "kidney_tumor", "kidney_masses", "masses", "tumor")} == {
        "kidney": 1.0330772532390826, "kidney_tumor": 1.0330772532390826, "kidney_masses": 1.0330772532390826,
        "masses": 1.1328796488598762, "tumor": 1.1498198361434828}
    with pytest.raises(KeyError, match="no KiTS Surface Dice tolerance for structure 'liver'"):
        tolerance_mm("liver")


def deepmind_surface_dice(reference, prediction, spacing, tolerance):
    """The package call of KiTS23's compute_metrics_for_label (both masks non-empty)."""
    distances = surface_distance.compute_surface_distances(reference, prediction, spacing)
    return surface_distance.compute_surface_dice_at_tolerance(distances, tolerance)


@pytest.mark.parametrize("spacing, axis, expected", [
    ((3.0, 0.7, 0.9), 0, 0.5),  # 3 mm through the slab > tolerance: the two outer layers miss, half the area
    ((0.8, 0.7, 0.9), 0, 1.0),  # 0.8 mm <= tolerance: every surface element has a partner
    ((3.0, 0.7, 0.9), 2, 1.0),  # the same slab moved 0.9 mm in-plane: spacing is read in array order
    ((3.0, 0.7, 1.2), 2, None),  # 1.2 mm in-plane > tolerance: only the slab's rim misses
])
def test_one_voxel_slab_shifted_by_one_voxel(spacing, axis, expected):
    # A slab one voxel thick has its surface elements on two corner layers, both covering the whole footprint.
    # Moved by one voxel through its thickness, its lower corner layer coincides with the other's upper one;
    # the two remaining layers are one slice spacing from the nearest element of the other slab.
    shape = (8, 12, 14)
    reference = box_mask(shape, (3, 2, 3), (3, 9, 10))
    prediction = np.roll(reference, 1, axis=axis)
    value = surface_dice(reference, prediction, spacing, KIDNEY_TOLERANCE)
    assert surface_dice(reference, prediction, spacing, spacing[axis]) == 1  # at the tolerance counts (<=)
    if expected is None:
        assert 0 < value < 1
    else:
        assert value == pytest.approx(expected, abs=1e-12)
    assert value == pytest.approx(deepmind_surface_dice(reference, prediction, spacing, KIDNEY_TOLERANCE), abs=1e-12)


def box_surface_elements(low, high, spacing):
    """Surface elements of the box of voxels low..high (inclusive), from geometry alone: (positions mm, areas).

    They sit on voxel corners (corner i lies between voxels i-1 and i), from low to high + 1 per axis, on the
    box's boundary. Marching cubes cuts the box there: a corner on a face carries a flat square (the face's two
    spacings), one on an edge a chamfer strip (edge spacing x half the diagonal of the other two), one on a
    box corner the triangle through the midpoints of its three edges.
    """
    s = np.asarray(spacing, dtype=float)
    corners = np.stack(np.meshgrid(*[np.arange(lo, hi + 2) for lo, hi in zip(low, high)], indexing="ij"),
                       -1).reshape(-1, 3)
    on_side = (corners == np.array(low)) | (corners == np.array(high) + 1)
    corners, on_side = corners[on_side.any(axis=1)], on_side[on_side.any(axis=1)]
    areas = []
    for sides in on_side:
        bounded, free = s[sides], s[~sides]
        if sides.sum() == 1:
            areas.append(np.prod(free))
        elif sides.sum() == 2:
            areas.append(free[0] * np.hypot(*bounded) / 2)
        else:
            areas.append(np.sqrt((s[1] * s[2]) ** 2 + (s[0] * s[2]) ** 2 + (s[0] * s[1]) ** 2) / 8)
    return corners * s, np.array(areas)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.8, 0.8), (2.5, 0.7, 1.1)])
@pytest.mark.parametrize("shift", [(1, 0, 0), (0, 2, 1), (2, 1, -1), (0, 0, 4)])
def test_shifted_boxes_match_surface_elements_from_geometry(spacing, shift):
    shape, low, high = (16, 18, 20), np.array((4, 5, 6)), np.array((9, 11, 12))
    reference, prediction = box_mask(shape, low, high), box_mask(shape, low + shift, high + shift)
    reference_points, reference_areas = box_surface_elements(low, high, spacing)
    prediction_points, prediction_areas = box_surface_elements(low + shift, high + shift, spacing)
    distances = cdist(reference_points, prediction_points)
    reference_to_prediction, prediction_to_reference = distances.min(axis=1), distances.min(axis=0)
    for tolerance in (*KITS_TOLERANCES_MM.values(), 1.9):
        near = (reference_areas[reference_to_prediction <= tolerance].sum()
                + prediction_areas[prediction_to_reference <= tolerance].sum())
        expected = near / (reference_areas.sum() + prediction_areas.sum())
        assert surface_dice(reference, prediction, spacing, tolerance) == pytest.approx(expected, abs=1e-12)


def sphere(shape, spacing, centre_mm, radius_mm):
    position_mm = np.stack(np.indices(shape), -1) * np.array(spacing)
    return np.linalg.norm(position_mm - np.array(centre_mm), axis=-1) <= radius_mm


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.8, 0.8)])
def test_spheres(spacing):
    shape = (24, 48, 48) if spacing[0] > 1 else (40, 40, 40)
    centre = (np.array(shape) - 1) / 2 * np.array(spacing)
    large, small = sphere(shape, spacing, centre, 15.0), sphere(shape, spacing, centre, 9.0)
    assert surface_dice(large, small, spacing, KIDNEY_TOLERANCE) == 0  # every element about 6 mm from the other
    for axis in range(3):  # one voxel: each element's shifted copy is one spacing away
        moved = np.roll(large, 1, axis=axis)
        value = surface_dice(large, moved, spacing, KIDNEY_TOLERANCE)
        assert value == 1 if spacing[axis] <= KIDNEY_TOLERANCE else 0 < value < 1
        assert value == pytest.approx(deepmind_surface_dice(large, moved, spacing, KIDNEY_TOLERANCE), abs=1e-12)


def test_surface_dice_matches_deepmind_package_on_random_shapes():
    rng = np.random.default_rng(7)
    for trial in range(12):
        shape = tuple(int(n) for n in rng.integers(5, 18, size=3))
        spacing = tuple(float(s) for s in rng.uniform(0.4, 3.0, size=3))
        smooth = [ndimage.gaussian_filter(rng.random(shape), 1.2) for _ in range(2)]
        reference, prediction = (field > np.quantile(field, q) for field, q in zip(smooth, rng.uniform(0.4, 0.8, 2)))
        if trial % 3 == 0:  # speckle, and shapes touching the image border
            reference, prediction = rng.random(shape) < 0.3, rng.random(shape) < 0.3
            reference[0, 0, 0] = prediction[-1, -1, -1] = True
        for tolerance in (*KITS_TOLERANCES_MM.values(), float(rng.uniform(0.3, 4.0))):
            assert surface_dice(reference, prediction, spacing, tolerance) == pytest.approx(
                deepmind_surface_dice(reference, prediction, spacing, tolerance), abs=1e-12), (trial, tolerance)


def test_surface_dice_on_a_crop_equals_the_whole_image():
    shape, spacing = (30, 40, 40), (2.0, 0.9, 0.7)
    reference = sphere(shape, spacing, (30, 18, 14), 8.0)
    prediction = sphere(shape, spacing, (32, 18, 15), 7.0)
    whole = surface_dice(reference, prediction, spacing, KIDNEY_TOLERANCE)
    crop = (slice(5, 25), slice(5, 35), slice(3, 38))
    assert reference[crop].sum() == reference.sum() and prediction[crop].sum() == prediction.sum()
    assert surface_dice(reference[crop], prediction[crop], spacing, KIDNEY_TOLERANCE) == whole
    assert whole == pytest.approx(deepmind_surface_dice(reference, prediction, spacing, KIDNEY_TOLERANCE), abs=1e-12)
