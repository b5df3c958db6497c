"""Kidney localisation pieces on small arrays: fusion, atlas choice, boxes, low-res -> full-res boxes, CT folders."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.orientation import KITS_DIRECTION
from nnunet_ppm.dataset_conversion.roi import Length, RoiWindow
from nnunet_ppm.dataset_conversion.synthesize import synthesize
from nnunet_ppm.localization.atlas_localizer import (ATLAS_MARGIN_MM, MASS_MARGIN_MM, UNENHANCED_MARGIN_MM, kidney_box,
                                                     region_box, share_inside, unenhanced_note)
from nnunet_ppm.localization.atlas_set import SIDE_CODES, make_atlas
from nnunet_ppm.localization.atlas_selection import k_medoids
from nnunet_ppm.localization.boxes_localizer import BoxesLocalizer
from nnunet_ppm.localization.fusion import FusedKidney, fuse_kidneys, majority_vote
from nnunet_ppm.localization.kidney_mass import kidney_mass_box
from nnunet_ppm.localization.localizer import CtCase, ct_cases, edge_notes, grow_box
from nnunet_ppm.localization.low_resolution import low_resolution_grid, resample_mask
from nnunet_ppm.localization.registration import RegistrationSettings, _searched_part, single_threaded_itk


def _image(shape, spacing=(0.8, 0.8, 2.5), direction=None, origin=(10.0, -20.0, 5.0)):
    image = sitk.GetImageFromArray(np.zeros(shape, np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def test_majority_vote_ties_go_to_background():
    a = np.array([[[0, 1, 1, 2]]], np.uint8)
    b = np.array([[[1, 1, 0, 2]]], np.uint8)
    c = np.array([[[2, 0, 0, 0]]], np.uint8)
    assert majority_vote([a, b, c]).tolist() == [[[0, 1, 0, 2]]]
    assert majority_vote([a, b]).tolist() == [[[0, 1, 0, 2]]], "one vote each for 0 and 1: background"


def test_fusion_region_is_where_two_supporting_atlases_agree_and_leaves_out_a_stray_atlas():
    shape = (1, 1, 20)
    right_masks = [slice(2, 8), slice(4, 10), slice(3, 9), slice(15, 19)]  # the last atlas is lost elsewhere
    warped = []
    for part in right_masks:
        array = np.zeros(shape, np.uint8)
        array[0, 0, part] = 1
        warped.append(array)
    (right,) = fuse_kidneys(warped)
    assert right.side == "right" and not right.weak and right.supporters == 3
    assert np.flatnonzero(right.majority[0, 0]).tolist() == [4, 5, 6, 7], "3 of 4 votes; 2 against 2 is a tie"
    assert np.flatnonzero(right.region[0, 0]).tolist() == list(range(3, 9)), "2 of the 3 supporters agree"
    assert right.confidence == pytest.approx(np.mean([0.8, 0.8, 0.8, 0.0])), "mean Dice with the majority"


def test_fusion_without_majority_uses_weak_consensus_or_finds_nothing():
    shape = (1, 1, 30)
    warped = []
    for part in (slice(0, 10), slice(8, 18), slice(16, 26), slice(27, 30)):
        array = np.zeros(shape, np.uint8)
        array[0, 0, part] = 2
        warped.append(array)
    (left,) = fuse_kidneys(warped)
    assert left.side == "left" and left.weak and left.confidence == 0.0
    assert left.supporters == 3, "the seed (2 votes at 8-9 and 16-17) touches the first three atlases"
    assert np.flatnonzero(left.region[0, 0]).tolist() == [8, 9, 16, 17]
    lonely = [np.zeros(shape, np.uint8) for _ in range(3)]
    lonely[0][0, 0, 5] = 1
    assert fuse_kidneys(lonely) == [], "a kidney only one atlas sees is not found"


def test_k_medoids_picks_the_centres_of_groups_not_outliers():
    points = np.array([[0, 0], [0.1, 0], [0, 0.1], [-0.1, 0], [5, 5], [5.1, 5], [5, 5.1], [4.9, 5], [2.5, -1]])
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    medoids, assignment = k_medoids(distances, 2)
    assert sorted(medoids) == [0, 4]
    assert assignment.tolist() == [medoids.index(0)] * 4 + [medoids.index(4)] * 4 + [medoids.index(0)]
    assert k_medoids(distances[:2, :2], 3)[0] == [0, 1], "fewer cases than atlases: all of them"


@pytest.mark.parametrize("direction", [None, KITS_DIRECTION])
def test_region_box_covers_every_full_resolution_voxel_of_the_low_resolution_region(direction):
    ct = _image((40, 30, 50), direction=direction)
    grid = low_resolution_grid(ct, 4.0)
    region = np.zeros(sitk.GetArrayViewFromImage(grid).shape, bool)
    region[2:4, 3:5, 1:3] = True
    box = region_box(region, grid, ct)
    mask = sitk.GetImageFromArray(region.astype(np.uint8))
    mask.CopyInformation(grid)
    inside = sitk.GetArrayFromImage(sitk.Resample(mask, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0
    voxels = np.argwhere(inside)
    assert len(voxels)
    assert [(int(lo), int(hi) + 1) for lo, hi in zip(voxels.min(0), voxels.max(0))] == list(box), "exactly covering"


def test_resample_mask_keeps_volume_and_place():
    ct = _image((40, 60, 60), spacing=(0.8, 0.8, 1.0))
    array = np.zeros((40, 60, 60), np.uint8)
    array[10:30, 20:44, 12:36] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(ct)
    low = resample_mask(mask, 4.0)
    assert low.GetSpacing() == (4.0, 4.0, 4.0) and low.GetDirection() == ct.GetDirection()
    low_ml = sitk.GetArrayViewFromImage(low).sum() * 64 / 1000
    assert low_ml == pytest.approx(array.sum() * 0.64 / 1000, rel=0.25)
    centre = lambda image: np.asarray(image.TransformContinuousIndexToPhysicalPoint(  # noqa: E731
        np.argwhere(sitk.GetArrayViewFromImage(image) > 0).mean(0)[::-1].tolist()))
    assert np.allclose(centre(low), centre(mask), atol=2.0)


def test_registration_seed_zero_is_not_itks_wall_clock_and_both_seeds_are_recorded():
    assert sitk.sitkWallClock == 0, "ITK reads a sampling seed of 0 as: seed from the clock"
    assert RegistrationSettings().metric_sampling_seed == 1
    described = RegistrationSettings(seed=7).describe()
    assert (described["seed"], described["metric_sampling_seed"], described["threads_per_registration"]) == (7, 8, 1)
    for seed in (-1, 2 ** 32 - 1):
        with pytest.raises(ValueError, match="registration seed"):
            RegistrationSettings(seed=seed)


def test_single_threaded_itk_restores_the_thread_count_after_an_error():
    original = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(3)
    try:
        with pytest.raises(RuntimeError):
            with single_threaded_itk():
                assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
                raise RuntimeError("registration failed")
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 3
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(original)


@pytest.mark.parametrize("direction", [None, KITS_DIRECTION])
def test_the_search_sees_every_ct_voxel_that_a_searched_offset_lays_in_the_atlas_region(direction):
    """The exhaustive search runs on the part of the CT it can reach: every CT point that some offset within
    the reach maps into the atlas region lies in that part, and the part is smaller than the CT."""
    ct = _image((60, 50, 50), spacing=(8.0, 8.0, 8.0), direction=direction, origin=(-200.0, -200.0, -300.0))
    atlas_region = _image((10, 12, 14), spacing=(8.0, 8.0, 8.0), origin=(-40.0, 10.0, -100.0))
    offset, reach = np.array([5.0, -12.0, 30.0]), np.array([0.0, 64.0, 200.0])
    part = _searched_part(ct, atlas_region, offset, reach)
    assert part.GetNumberOfPixels() < ct.GetNumberOfPixels() / 2
    part_low = np.array(part.TransformIndexToPhysicalPoint((0, 0, 0)))
    part_high = np.array(part.TransformIndexToPhysicalPoint([n - 1 for n in part.GetSize()]))
    part_low, part_high = np.minimum(part_low, part_high), np.maximum(part_low, part_high)
    size = atlas_region.GetSize()
    corners = np.array([atlas_region.TransformIndexToPhysicalPoint((i * (size[0] - 1), j * (size[1] - 1),
                                                                     k * (size[2] - 1)))
                        for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    for shift in np.linspace(-1, 1, 5):
        ct_points = corners - (offset + shift * reach)     # CT points that this offset maps onto the corners
        inside_ct = [ct.TransformPhysicalPointToIndex(point.tolist()) for point in ct_points
                     if all(0 <= i < n for i, n in zip(ct.TransformPhysicalPointToContinuousIndex(point.tolist()),
                                                       ct.GetSize()))]
        for index in inside_ct:
            point = np.array(ct.TransformIndexToPhysicalPoint(index))
            assert np.all(point >= part_low - 1e-6) and np.all(point <= part_high + 1e-6), (shift, point)


def test_grow_box_clips_to_the_image():
    assert grow_box(((2, 5), (0, 10), (8, 9)), 3.0, (3.0, 1.0, 2.0), (6, 10, 10)) == ((1, 6), (0, 10), (6, 10))


def _ct_folder(tmp_path, names):
    for name in names:
        sitk.WriteImage(_image((4, 5, 6)), str(tmp_path / name))
    return tmp_path


def test_ct_cases_take_nnunet_naming_and_refuse_more_channels(tmp_path):
    folder = _ct_folder(tmp_path, ["b_0000.nii.gz", "a_1_0000.nrrd"])
    (folder / "notes_0000.txt").write_text("not an image")
    assert [(c.case_id, c.path.name) for c in ct_cases(folder)] == [("a_1", "a_1_0000.nrrd"), ("b", "b_0000.nii.gz")]
    _ct_folder(tmp_path, ["b_0001.nii.gz"])
    with pytest.raises(ValueError, match="one CT channel"):
        ct_cases(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="CASE_0000"):
        ct_cases(tmp_path / "empty")


def _boxes_file(tmp_path, cases):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"cases": cases}))
    return path


def test_boxes_localizer_gives_the_listed_boxes_and_reports_unlisted_cts(tmp_path):
    ct_file = _ct_folder(tmp_path, ["c1_0000.nii.gz"]) / "c1_0000.nii.gz"
    path = _boxes_file(tmp_path, {"c1": {"kidneys": [{"side": "left", "kidney_box": [[0, 2], [1, 3], [0, 6]]},
                                                      {"side": "right", "kidney_box": [[1, 4], [0, 5], [2, 3]]}]}})
    localizer = BoxesLocalizer(path, kidney_margin_mm=0.8)
    found = localizer.locate(CtCase("c1", ct_file))
    assert [(k.side, k.box) for k in found.kidneys] == [("right", ((0, 4), (0, 5), (1, 4))),
                                                        ("left", ((0, 3), (0, 4), (0, 6)))], "grown by 0.8 mm, clipped"
    missing = localizer.locate(CtCase("c2", ct_file))
    assert missing.kidneys == [] and "no kidney found" in missing.notes and missing.confidence is None


@pytest.mark.parametrize("kidneys, message", [
    ([{"side": "middle", "kidney_box": [[0, 1], [0, 1], [0, 1]]}], "side"),
    ([{"side": "left", "kidney_box": [[0, 1], [0, 1], [0, 1]]}, {"side": "left", "kidney_box": [[0, 1], [0, 1], [0, 1]]}],
     "once"),
    ([{"side": "left"}], "kidney_box"),
])
def test_malformed_boxes_files_name_the_case(tmp_path, kidneys, message):
    with pytest.raises(ValueError, match=f"case c1: .*{message}"):
        BoxesLocalizer(_boxes_file(tmp_path, {"c1": {"kidneys": kidneys}}))


def test_a_box_outside_the_ct_is_an_error_naming_case_and_side(tmp_path):
    ct_file = _ct_folder(tmp_path, ["c1_0000.nii.gz"]) / "c1_0000.nii.gz"
    localizer = BoxesLocalizer(_boxes_file(tmp_path, {"c1": {"kidneys": [
        {"side": "left", "kidney_box": [[0, 5], [0, 2], [0, 2]]}]}}))
    with pytest.raises(ValueError, match=r"c1 \(.*c1_0000.nii.gz\): .*boxes.json, left kidney: .*axis 0 needs 0 <= start < stop <= 4"):
        localizer.locate(CtCase("c1", ct_file))


@pytest.mark.parametrize("window", [RoiWindow(), RoiWindow((Length(110, "mm"), Length(90, "mm")), Length(3, "voxels"))])
def test_roi_window_description_reads_back(window):
    assert RoiWindow.from_description(window.describe()) == window


def test_make_atlas_of_a_ct_painted_at_5_mm(kits19_labels_dir, tmp_path):
    """Regression: make_atlas read a temporary image through a numpy view and crashed (segfault) on this case."""
    source = synthesize(tmp_path / "src", layout="kits19", labels_from=[kits19_labels_dir / "case_00066.nii.gz"],
                        min_spacing_mm=5.0, progress=False)
    case = source / "data" / "case_00066"
    atlas = make_atlas("case_00066", sitk.ReadImage(str(case / "imaging.nii.gz")),
                       sitk.ReadImage(str(case / "segmentation.nii.gz")), 4.0, 20.0)
    assert atlas.sides.GetSpacing() == (4.0, 4.0, 4.0)
    assert set(np.unique(sitk.GetArrayFromImage(atlas.sides))) == {0, *SIDE_CODES.values()}


def _hu_image(ct: np.ndarray, spacing) -> sitk.Image:
    """`ct` (z y x) as an image with `spacing` in array order."""
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing(spacing[::-1])
    return image


def _mask(shape, box):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(*axis) for axis in box)] = True
    return mask


def test_share_inside_is_the_inner_boxs_volume_fraction_inside_the_outer_box():
    assert share_inside(((0, 10), (0, 10), (0, 10)), ((5, 20), (0, 10), (0, 10))) == 0.5
    assert share_inside(((0, 10), (0, 10), (0, 10)), ((10, 20), (0, 10), (0, 10))) == 0.0


def test_kidney_box_is_the_kidneys_mass_with_a_small_margin_when_the_atlases_kidney_touches_it():
    """Atlases that agree on a region far larger than the kidney, their majority kidney shifted (as affine
    registration shifts it by 10-30 mm): the box is the kidney's own, grown by MASS_MARGIN_MM, not the region's."""
    spacing, shape = (2.0, 1.0, 1.0), (40, 120, 120)  # mm and voxels, array order
    ct = np.full(shape, -100, np.int16)
    kidney = ((10, 30), (40, 70), (40, 70))
    ct[_mask(shape, kidney)] = 200  # enhancing cortex in fat
    image = _hu_image(ct, spacing)
    region = ((4, 36), (26, 90), (30, 84))
    fused = FusedKidney("right", _mask(shape, ((12, 28), (52, 82), (52, 82))), _mask(shape, region), 8, 0.5, False)
    box, found, source = kidney_box(image, fused, image, mass_search_mm=40)  # the CT's grid stands for the atlases'
    margin = [int(np.ceil(MASS_MARGIN_MM / step)) for step in spacing]
    assert box == tuple((start - m, stop + m) for (start, stop), m in zip(kidney, margin)) and "mass" in source
    assert found == kidney
    atlas_box = tuple((max(start - int(ATLAS_MARGIN_MM / step), 0), min(stop + int(ATLAS_MARGIN_MM / step), size))
                      for (start, stop), step, size in zip(region, spacing, shape))
    assert kidney_box(image, fused, image, mass_search_mm=0) == (atlas_box, region, "the atlases (mass search off)")
    elsewhere = FusedKidney("right", _mask(shape, ((12, 28), (95, 115), (90, 110))), _mask(shape, region), 8, 0.5,
                            False)
    assert kidney_box(image, elsewhere, image, mass_search_mm=40)[0] == atlas_box, \
        "a mass the atlases' kidney does not touch is not taken for the kidney"


def test_an_unenhanced_kidney_gets_the_atlas_box_with_the_unenhanced_margin_and_a_note():
    """A non-contrast kidney (35 HU) in fat gets a note saying it is unenhanced. Beside a vertebra reaching into the
    atlas box (cancellous bone at 200 HU, inside the enhancing window, in a 500 HU cortex) the bone is not taken
    for the kidney's mass: the box is the atlas box grown by UNENHANCED_MARGIN_MM."""
    spacing, shape = (2.0, 1.0, 1.0), (40, 120, 120)
    ct = np.full(shape, -100, np.int16)
    ct[_mask(shape, ((10, 30), (40, 70), (40, 70)))] = 35
    region = ((4, 36), (30, 80), (30, 80))
    assert "unenhanced" in unenhanced_note("right", region, _hu_image(ct, spacing))[0]
    ct[_mask(shape, ((5, 35), (40, 70), (72, 102)))] = 500
    ct[_mask(shape, ((8, 32), (43, 67), (75, 99)))] = 200
    image = _hu_image(ct, spacing)
    assert kidney_mass_box(image, region, 40, seed="box") is not None, "the bone is an enhancing mass in the box"
    fused = FusedKidney("right", _mask(shape, ((12, 28), (45, 70), (45, 70))), _mask(shape, region), 8, 0.5, False)
    box, found, source = kidney_box(image, fused, image, mass_search_mm=40)
    assert box == grow_box(region, UNENHANCED_MARGIN_MM, spacing, shape) and found == region, (box, source)
    assert "does not enhance" in source and "grown" not in source


def test_an_unenhanced_middle_grows_the_atlas_box_to_the_enhancing_kidney_in_it():
    """The atlases put a kidney beside its place, over its non-enhancing tumor (35 HU), so its middle reads
    unenhanced; the kidney's enhancing parenchyma (200 HU) reaches into the atlas box from the side. The box grows to
    that enhancing mass, then by UNENHANCED_MARGIN_MM: the whole kidney is inside, which the atlas box and its margin
    alone missed (case_00037 of benchmarks/whole_ct.py in the venous phase, before the registration's front-back
    search put its atlases in place)."""
    spacing, shape = (2.0, 1.0, 1.0), (40, 120, 120)
    ct = np.full(shape, -100, np.int16)
    parenchyma, tumor = ((10, 30), (56, 100), (40, 70)), ((10, 30), (26, 56), (40, 70))
    ct[_mask(shape, parenchyma)] = 200
    ct[_mask(shape, tumor)] = 35
    image = _hu_image(ct, spacing)
    region = ((6, 34), (16, 62), (34, 76))
    fused = FusedKidney("left", _mask(shape, ((10, 30), (22, 52), (44, 66))), _mask(shape, region), 8, 0.5, False)
    box, found, source = kidney_box(image, fused, image, mass_search_mm=40)
    assert found == ((6, 34), (16, 100), (34, 76)), (found, source)
    assert box == grow_box(found, UNENHANCED_MARGIN_MM, spacing, shape)
    assert "does not enhance" in source and "grown to the enhancing mass" in source
    assert grow_box(region, UNENHANCED_MARGIN_MM, spacing, shape)[1][1] < parenchyma[1][1], \
        "the atlas box and its margin alone would have cut the kidney"


def test_edge_notes_name_the_anatomical_edges_a_kidney_box_reaches():
    axial = _image((30, 40, 50), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert edge_notes("right", ((0, 10), (5, 40), (10, 20)), axial) == [
        "right kidney reaches the scan's lower edge: it may be cut off there",
        "right kidney reaches the scan's back edge: it may be cut off there"]
    assert edge_notes("left", ((1, 29), (1, 39), (1, 49)), axial) == []
    kits = _image((30, 40, 50), direction=KITS_DIRECTION)  # array axis 0 runs right -> left, axis 2 superior -> inferior
    assert [note.split("'s ")[1].split(" edge")[0] for note in edge_notes("left", ((20, 30), (5, 9), (40, 50)), kits)] \
        == ["left", "lower"]


def test_the_mass_search_runs_only_where_the_opening_resolves_a_plane():
    """An enhancing vessel (10 mm wide) leaves the kidney and ends inside the search region. With 5 mm slices and 1 mm
    pixels the opening cuts in-plane only, and the kidney's closed mass gives the box (with the vessel, wider than the
    opening). With 4.5 mm pixels the opening is less than a voxel in every direction: no search, the atlas box
    alone."""
    shape = (40, 120, 120)
    ct = np.full(shape, -100, np.int16)
    ct[_mask(shape, ((10, 30), (40, 70), (40, 70)))] = 200  # the kidney
    ct[_mask(shape, ((15, 25), (50, 60), (70, 100)))] = 200  # a vessel, 16 voxels beyond the atlas region
    region = ((4, 36), (26, 90), (30, 84))
    fused = FusedKidney("right", _mask(shape, ((12, 28), (45, 65), (45, 65))), _mask(shape, region), 8, 0.5, False)
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing((1.0, 1.0, 5.0))
    box = kidney_box(image, fused, image, mass_search_mm=40)
    assert box.found == ((10, 30), (40, 70), (40, 100)) and box.source == "the kidney's enhancing mass in the CT"
    image.SetSpacing((4.5, 4.5, 6.0))
    box = kidney_box(image, fused, image, mass_search_mm=40)
    assert box.found == region and box.source.startswith("the atlases (the CT is coarser than 4 mm in-plane")
    assert box.box == grow_box(region, ATLAS_MARGIN_MM, (6.0, 4.5, 4.5), shape)
