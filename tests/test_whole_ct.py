"""Whole CTs end to end, on synthetic CTs painted onto real KiTS19 label maps (skipped without them).

Atlases built from other CTs find every kidney and its ROI holds >= 99% of it;
localising a CT again, in worker processes or in this process with another number
of ITK threads, gives the same boxes, labels and confidences; `nnunet_ppm localize`
and `predict-ct` run as commands; the pasted-back label map equals the ROI
predictions inside the boxes and is background outside.
"""
import json
import os
import time
from types import SimpleNamespace

import cc3d
import highdicom
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.convert import convert_dataset
from nnunet_ppm.dataset_conversion.orientation import orientation_code, slice_axis
from nnunet_ppm.dataset_conversion.roi import Length, RoiWindow, box_overlap, kidney_sides, roi_box
from nnunet_ppm.dataset_conversion.synthesize import synthesize
from nnunet_ppm.localization.atlas_localizer import AtlasLocalizer
from nnunet_ppm.localization.atlas_set import SIDE_CODES, load_atlases
from nnunet_ppm.localization.dicom_cts import series_case_id
from nnunet_ppm.localization.localizer import box_in, ct_cases
from nnunet_ppm.localization.registration import RegistrationSettings
from nnunet_ppm.whole_ct.recall import roi_recall
from nnunet_ppm.whole_ct.rois import rois_for
from dicom_files import write_dicom_series
from nnunet_runs import command_env, kill_when, run_command

pytestmark = pytest.mark.integration  # the atlases come from `nnunet_ppm atlas build`, run as a command

ATLAS_CASES = ("case_00001", "case_00003", "case_00006")
TARGET_CASES = ("case_00009", "case_00013")
# in mm, as the paper's 150 x 150 voxels are at its 0.59-0.74 mm pixels (the test CTs have 3 mm pixels)
WINDOW = RoiWindow((Length(110, "mm"), Length(110, "mm")), Length(10, "mm"))
ITERATIONS = 20  # affine iterations per level: enough here, and quick
SEED = 3


def painted_dataset(labels_dir, case_ids, root, dataset_id, seed=0, phase="arterial"):
    """CTs painted onto the label maps of `case_ids` coarsened to >= 3 mm, converted (whole CTs) under root."""
    source = synthesize(root / f"source_{dataset_id}", seed=seed, layout="kits19", min_spacing_mm=3.0,
                        labels_from=[labels_dir / f"{case}.nii.gz" for case in case_ids], progress=False,
                        phase=phase)
    return convert_dataset(source, dataset_id, layout="kits19", raw_dir=root / "nnUNet_raw", progress=False)


@pytest.fixture(scope="module")
def whole_cts(kits19_labels_dir, tmp_path_factory):
    """Atlases (`nnunet_ppm atlas build`) from three painted CTs, and two other painted CTs to localise."""
    root = tmp_path_factory.mktemp("whole_ct")
    atlas_source = painted_dataset(kits19_labels_dir, ATLAS_CASES, root, 910)
    targets = painted_dataset(kits19_labels_dir, TARGET_CASES, root, 911, seed=1)
    run_command(["nnunet_ppm", "atlas", "build", "-d", atlas_source, "-o", root / "atlases", "-n", len(ATLAS_CASES),
                 "--disable_progress_bar"], command_env(root))
    return SimpleNamespace(root=root, atlases=root / "atlases", images=targets / "imagesTr",
                           labels=targets / "labelsTr")


def test_atlas_build_stores_low_resolution_kidney_regions_and_how_they_were_chosen(whole_cts):
    description = json.loads((whole_cts.atlases / "atlases.json").read_text())
    assert [entry["name"] for entry in description["atlases"]] == list(ATLAS_CASES)
    assert description["spacing_mm"] == 4.0 and description["selection"]["method"].startswith("k-medoids")
    assert sorted(description["selection"]["case_features"]) == list(ATLAS_CASES)
    for atlas in load_atlases(whole_cts.atlases).atlases:
        assert atlas.ct.GetSpacing() == (4.0, 4.0, 4.0) and atlas.sides.GetSize() == atlas.ct.GetSize()
        assert set(np.unique(sitk.GetArrayViewFromImage(atlas.sides))) == {0, *SIDE_CODES.values()}


def test_atlases_of_other_cts_find_every_kidney_and_its_roi_holds_99_percent_of_it(whole_cts):
    localizer = AtlasLocalizer(load_atlases(whole_cts.atlases), RegistrationSettings(affine_iterations=ITERATIONS))
    for ct in ct_cases(whole_cts.images):
        localization = localizer.locate(ct)
        rois = rois_for(localization, ct.image, WINDOW)
        reference = sitk.ReadImage(str(whole_cts.labels / f"{ct.case_id}.nii.gz"))
        recalls = roi_recall(ct.case_id, reference, {roi.side: roi.box for roi in rois}, ct.image)
        assert sorted(r.side for r in recalls) == ["left", "right"]
        for recall in recalls:
            assert recall.found and recall.fraction >= 0.99, (recall, localization.notes)
        assert all(0 < kidney.confidence <= 1 for kidney in localization.kidneys)


def test_a_kidney_without_tumor_beside_a_large_tumor_keeps_an_roi_window_sized_box(whole_cts, kits19_labels_dir):
    """case_00042: a 1.4 l tumor on the left kidney, none on the right. The right kidney's ROI is the window (its
    box is its own enhancing mass, not the atlases' wider region nor the tumor); the left one's holds the tumor."""
    target = painted_dataset(kits19_labels_dir, ("case_00042",), whole_cts.root, 912, seed=1)
    ct = ct_cases(target / "imagesTr")[0]
    localizer = AtlasLocalizer(load_atlases(whole_cts.atlases), RegistrationSettings(affine_iterations=ITERATIONS))
    localization = localizer.locate(ct)
    rois = {roi.side: roi for roi in rois_for(localization, ct.image, WINDOW)}
    reference = sitk.ReadImage(str(target / "labelsTr" / "case_00042.nii.gz"))
    recalls = {r.side: r for r in roi_recall(ct.case_id, reference, {side: roi.box for side, roi in rois.items()}, ct.image)}
    assert sorted(recalls) == ["left", "right"], localization.notes
    assert all(r.found and r.fraction >= 0.99 for r in recalls.values()), (recalls, localization.notes)
    assert not rois["right"].enlarged, (rois["right"], localization.notes)
    assert rois["left"].enlarged, "the tumor reaches beyond the window"


def _held(localization, ct, reference):
    """{side: KidneyRecall} of the located kidneys' ROIs (WINDOW) over the reference label map."""
    rois = {roi.side: roi.box for roi in rois_for(localization, ct.image, WINDOW)}
    return {r.side: r for r in roi_recall(ct.case_id, reference, rois, ct.image)}


def test_a_scan_ending_inside_a_kidney_gives_a_clipped_box_and_a_note_naming_the_edge(whole_cts):
    """The first painted CT cut through the middle of its lower kidney along the body axis."""
    case = TARGET_CASES[0]
    ct = sitk.ReadImage(str(whole_cts.images / f"{case}_0000.nii.gz"))
    reference = sitk.ReadImage(str(whole_cts.labels / f"{case}.nii.gz"))
    axis = slice_axis(ct.GetDirection())  # array axis along the body; KiTS files run it superior -> inferior
    kidneys_map, sides = kidney_sides(reference)
    lower = max(range(len(sides)), key=lambda i: np.argwhere(kidneys_map == i + 1)[:, axis].mean())
    cut = int(np.argwhere(kidneys_map == lower + 1)[:, axis].mean())
    index = [slice(None)] * 3
    index[2 - axis] = slice(0, cut)  # SimpleITK slicing is in x, y, z order
    cut_ct, cut_reference = ct[tuple(index)], reference[tuple(index)]
    path = whole_cts.root / "cut" / f"{case}_0000.nii.gz"
    path.parent.mkdir(exist_ok=True)
    sitk.WriteImage(cut_ct, str(path))
    localizer = AtlasLocalizer(load_atlases(whole_cts.atlases), RegistrationSettings(affine_iterations=ITERATIONS))
    localization = localizer.locate(ct_cases(path.parent)[0])
    held = _held(localization, ct_cases(path.parent)[0], cut_reference)
    assert sorted(held) == ["left", "right"], localization.notes
    assert all(r.found and r.fraction >= 0.99 for r in held.values()), (held, localization.notes)
    assert f"{sides[lower]} kidney reaches the scan's lower edge: it may be cut off there" in localization.notes


def test_a_scan_with_one_kidney_finds_it_whole(whole_cts, kits19_labels_dir):
    """A patient after nephrectomy: the left kidney of a real label map removed before painting."""
    label = sitk.ReadImage(str(kits19_labels_dir / f"{TARGET_CASES[1]}.nii.gz"))
    kidneys_map, sides = kidney_sides(label)
    array = sitk.GetArrayFromImage(label)
    array[kidneys_map == sides.index("left") + 1] = 0
    one_kidney = sitk.GetImageFromArray(array)
    one_kidney.CopyInformation(label)
    (whole_cts.root / "nephrectomy_labels").mkdir(exist_ok=True)
    sitk.WriteImage(one_kidney, str(whole_cts.root / "nephrectomy_labels" / f"{TARGET_CASES[1]}.nii.gz"))
    target = painted_dataset(whole_cts.root / "nephrectomy_labels", (TARGET_CASES[1],), whole_cts.root, 914, seed=1)
    ct = ct_cases(target / "imagesTr")[0]
    localizer = AtlasLocalizer(load_atlases(whole_cts.atlases), RegistrationSettings(affine_iterations=ITERATIONS))
    localization = localizer.locate(ct)
    held = _held(localization, ct, sitk.ReadImage(str(target / "labelsTr" / f"{TARGET_CASES[1]}.nii.gz")))
    assert list(held) == ["right"] and held["right"].found and held["right"].fraction >= 0.99, localization.notes


@pytest.mark.parametrize("phase", ["venous", "non-contrast"])
def test_ct_of_another_contrast_phase_keeps_both_kidneys_and_says_when_they_are_unenhanced(whole_cts,
                                                                                         kits19_labels_dir, phase):
    """The first target CT painted in another phase, localised with the arterial atlases: no mass runs away, no
    kidney is lost (its ROI holds >= 99% of it), and a non-contrast CT is flagged."""
    target = painted_dataset(kits19_labels_dir, TARGET_CASES[:1], whole_cts.root, 915 + ("venous", "non-contrast")
                             .index(phase), seed=1, phase=phase)
    ct = ct_cases(target / "imagesTr")[0]
    localizer = AtlasLocalizer(load_atlases(whole_cts.atlases), RegistrationSettings(affine_iterations=ITERATIONS))
    localization = localizer.locate(ct)
    held = _held(localization, ct, sitk.ReadImage(str(target / "labelsTr" / f"{TARGET_CASES[0]}.nii.gz")))
    assert sorted(held) == ["left", "right"], localization.notes
    assert all(r.found and r.fraction >= 0.99 for r in held.values()), (held, localization.notes)
    unenhanced = [note for note in localization.notes if "unenhanced" in note]
    assert len(unenhanced) == (2 if phase == "non-contrast" else 0), localization.notes


def _with_a_thicker_belly(image, belly_mm):
    """`image` (HU) in LPS with `belly_mm` of fat added in front of the body along every front-back line through it."""
    lps = sitk.DICOMOrient(image, "LPS")
    pad = int(np.ceil(belly_mm / lps.GetSpacing()[1]))
    hu = sitk.GetArrayFromImage(lps)
    hu = np.concatenate([np.full((hu.shape[0], pad, hu.shape[2]), -1000, hu.dtype), hu], axis=1)
    body = hu > -500
    front = np.where(body.any(axis=1), body.argmax(axis=1), -1)[:, None, :]  # (z, 1, x): the body's first voxel
    y = np.arange(hu.shape[1])[None, :, None]
    hu[(front >= 0) & (y < front) & (y >= front - pad)] = -100
    thicker = sitk.GetImageFromArray(hu)
    thicker.SetSpacing(lps.GetSpacing())
    thicker.SetDirection(lps.GetDirection())
    thicker.SetOrigin(lps.TransformIndexToPhysicalPoint((0, -pad, 0)))
    return thicker


def test_a_thicker_belly_does_not_pull_the_kidney_boxes_forward(whole_cts, kits19_labels_dir):
    """case_00037 (424 ml tumor on the left kidney) painted without contrast, with 100 mm more fat in front of the
    body: the body's centre moves forward, the kidneys do not. Registration started from the body centres alone
    put the left kidney's box in front of its place (94 % held); the front-back search holds both kidneys whole."""
    target = painted_dataset(kits19_labels_dir, ("case_00037",), whole_cts.root, 913, seed=1, phase="non-contrast")
    path = whole_cts.root / "thicker_belly" / "case_00037_0000.nii.gz"
    path.parent.mkdir(exist_ok=True)
    ct = ct_cases(target / "imagesTr")[0]
    sitk.WriteImage(_with_a_thicker_belly(ct.image, 100.0), str(path))
    ct = ct_cases(path.parent)[0]
    localizer = AtlasLocalizer(load_atlases(whole_cts.atlases), RegistrationSettings(affine_iterations=ITERATIONS))
    localization = localizer.locate(ct)
    reference = sitk.Resample(sitk.ReadImage(str(target / "labelsTr" / "case_00037.nii.gz")), ct.image,
                              sitk.Transform(), sitk.sitkNearestNeighbor)
    held = _held(localization, ct, reference)
    assert sorted(held) == ["left", "right"], localization.notes
    assert all(r.found and r.fraction >= 0.99 for r in held.values()), (held, localization.notes)


def _localised_with_itk_threads(localizer, ct, threads):
    """`localizer` on `ct`, with ITK's process-wide default number of threads set to `threads` meanwhile."""
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    try:
        found = localizer.locate(ct).to_json()
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
    del found["seconds"]
    return found


def test_localising_a_ct_again_with_other_workers_and_threads_gives_identical_boxes_labels_and_confidences(whole_cts):
    atlases = load_atlases(whole_cts.atlases)
    settings = RegistrationSettings(affine_iterations=ITERATIONS, seed=0)
    ct = ct_cases(whole_cts.images)[0]
    in_workers = AtlasLocalizer(atlases, settings, num_workers=2).locate(ct).to_json()
    del in_workers["seconds"]
    in_process = AtlasLocalizer(atlases, settings, num_workers=1)
    one_thread = _localised_with_itk_threads(in_process, ct, 1)
    three_threads = _localised_with_itk_threads(in_process, ct, 3)
    assert [k["side"] for k in one_thread["kidneys"]] == ["right", "left"]
    assert one_thread == three_threads, "one and three ITK threads in this process"
    assert one_thread == in_workers, "one thread in this process and two worker processes"


@pytest.fixture(scope="module")
def localized(whole_cts):
    """`nnunet_ppm localize --atlases` on the painted CTs: the JSON it wrote (``path``) and the command's wall time."""
    out = whole_cts.root / "boxes.json"
    start = time.perf_counter()
    run_command(["nnunet_ppm", "localize", "-i", whole_cts.images, "-o", out, "--atlases", whole_cts.atlases,
                 "--registration-iterations", ITERATIONS, "--registration-seed", SEED, "--registration-workers", 2,
                 "--disable_progress_bar"], command_env(whole_cts.root))
    return SimpleNamespace(path=out, wall_seconds=time.perf_counter() - start)


def test_localize_reports_boxes_confidence_and_time_and_reads_its_own_output_back(whole_cts, localized):
    report = json.loads(localized.path.read_text())
    assert report["localizer"]["kind"] == "atlas" and report["localizer"]["atlas_names"] == list(ATLAS_CASES)
    registration = report["localizer"]["registration"]
    assert (registration["seed"], registration["metric_sampling_seed"]) == (SEED, SEED + 1), "ITK's 0 is the clock"
    assert sorted(report["cases"]) == list(TARGET_CASES)
    for case, entry in report["cases"].items():
        assert [k["side"] for k in entry["kidneys"]] == ["right", "left"]
        assert 0 < entry["confidence"] <= 1
        shape = sitk.ReadImage(str(whole_cts.images / f"{case}_0000.nii.gz")).GetSize()[::-1]
        for kidney in entry["kidneys"]:
            assert all(0 <= start < stop <= size for (start, stop), size in zip(kidney["kidney_box"], shape))
    # each CT's time is a share of the command's (which also started Python, loaded the atlases, wrote the JSON)
    seconds = [entry["seconds"] for entry in report["cases"].values()]
    assert all(s > 0 for s in seconds) and sum(seconds) < localized.wall_seconds, (seconds, localized.wall_seconds)
    again = whole_cts.root / "boxes_again.json"
    run_command(["nnunet_ppm", "localize", "-i", whole_cts.images, "-o", again, "--boxes", localized.path,
                 "--disable_progress_bar"], command_env(whole_cts.root))
    boxes = lambda r: {c: [k["kidney_box"] for k in e["kidneys"]] for c, e in r["cases"].items()}  # noqa: E731
    assert boxes(json.loads(again.read_text())) == boxes(report)


def test_localize_gives_the_same_kidney_boxes_for_the_ct_stored_in_other_orientations(whole_cts):
    """The first CT stored axial LPS, axial RAS, sagittal first (SLP) and flipped along the body axis (LPI), localised
    in one command: every kidney's box covers the same voxels in physical space, within one voxel."""
    ct = sitk.ReadImage(str(whole_cts.images / f"{TARGET_CASES[0]}_0000.nii.gz"))
    folder = whole_cts.root / "orientations"
    codes = ("LPS", "RAS", "SLP", "LPI")
    (folder / "cts").mkdir(parents=True)
    stored = {code: sitk.DICOMOrient(ct, code) for code in codes}
    for code, image in stored.items():
        sitk.WriteImage(image, str(folder / "cts" / f"{code}_0000.nii.gz"))
    run_command(["nnunet_ppm", "localize", "-i", folder / "cts", "-o", folder / "boxes.json", "--atlases",
                 whole_cts.atlases, "--registration-iterations", ITERATIONS, "--registration-seed", SEED,
                 "--registration-workers", 2, "--disable_progress_bar"], command_env(whole_cts.root))
    cases = json.loads((folder / "boxes.json").read_text())["cases"]
    in_lps = {code: {k["side"]: box_in(k["kidney_box"], stored[code], stored["LPS"]) for k in cases[code]["kidneys"]}
              for code in codes}
    assert sorted(in_lps["LPS"]) == ["left", "right"], cases["LPS"]["notes"]
    for code in codes[1:]:
        assert sorted(in_lps[code]) == ["left", "right"], (code, cases[code]["notes"])
        for side, box in in_lps[code].items():
            assert np.abs(np.subtract(box, in_lps["LPS"][side])).max() <= 1, (code, side, box, in_lps["LPS"][side])


def _array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def predict_ct_run(whole_cts, localized, tiny_dataset, tmp_path_factory):
    """An uninterrupted `predict-ct --boxes` of both CTs, one of them left out of the boxes (no kidney found)."""
    tiny_dataset.model("PPMTrainer_debug", "nnUNetPPMPlans")  # the smoke run's ROI model (tiny 110 mm ROIs)
    root = tmp_path_factory.mktemp("predict_ct")
    report = json.loads(localized.path.read_text())
    del report["cases"][TARGET_CASES[1]]
    (root / "boxes.json").write_text(json.dumps(report))
    args = ["nnunet_ppm", "predict-ct", "-i", whole_cts.images, "-d", tiny_dataset.dataset_id, "-c", "3d_fullres",
            "-tr", "PPMTrainer_debug", "-p", "nnUNetPPMPlans", "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0",
            "--no-crf", "--boxes", root / "boxes.json", "--roi-size", "110mm", "--roi-margin", "10mm", "--keep-rois",
            "--disable_progress_bar"]
    run_command([*args, "-o", root / "out"], tiny_dataset.env)
    return SimpleNamespace(root=root, args=args, out=root / "out")


def test_predict_ct_pastes_the_roi_predictions_back_exactly_and_reports_a_ct_without_kidneys(
        whole_cts, predict_ct_run):
    found, missing = TARGET_CASES
    out = predict_ct_run.out
    ct = sitk.ReadImage(str(whole_cts.images / f"{found}_0000.nii.gz"))
    pasted_image = sitk.ReadImage(str(out / f"{found}.nii.gz"))
    assert pasted_image.GetSize() == ct.GetSize() and pasted_image.GetOrigin() == ct.GetOrigin()
    assert pasted_image.GetDirection() == ct.GetDirection() and pasted_image.GetSpacing() == ct.GetSpacing()
    pasted = sitk.GetArrayFromImage(pasted_image)
    case_report = json.loads((out / f"{found}.json").read_text())
    manifest = json.loads((out / "rois" / "roi_manifest.json").read_text())
    assert [(r["side"], r["box"]) for r in case_report["rois"]] == [(m["side"], m["box"]) for m in manifest]
    assert set(case_report["seconds"]) == {"localization", "cropping", "roi_prediction", "roi_prediction_all_cts",
                                           "roi_preprocessing", "roi_sliding_window", "roi_resampling",
                                           "roi_largest_component", "paste_and_write"}, "--no-crf: no roi_crf"
    assert 0 < case_report["seconds"]["roi_sliding_window"] < case_report["seconds"]["roi_prediction_all_cts"]

    regions, predictions = [], []
    for roi in case_report["rois"]:
        box = tuple(tuple(axis) for axis in roi["box"])
        assert box == roi_box(tuple(tuple(a) for a in roi["kidney_box"]), ct.GetSpacing()[::-1], ct.GetDirection(),
                              WINDOW)[0], "the window of convert --roi"
        prediction = sitk.GetArrayFromImage(sitk.DICOMOrient(  # kept as the model saw it: in its orientation
            sitk.ReadImage(str(out / "rois" / "predictions" / f"{roi['roi_case']}.nii.gz")),
            orientation_code(ct.GetDirection())))
        in_image = np.zeros(pasted.shape, bool)
        image_slices, box_slices = box_overlap(box, pasted.shape)
        in_image[image_slices] = True
        on_grid = np.zeros(pasted.shape, np.uint8)
        on_grid[image_slices] = prediction[box_slices]
        regions.append(in_image)
        predictions.append(on_grid)
    right, left = regions
    assert predictions[0].any() or predictions[1].any(), "the ROI model predicted some foreground"
    assert np.array_equal(pasted[right & ~left], predictions[0][right & ~left]), "right ROI alone: its labels"
    assert np.array_equal(pasted[left & ~right], predictions[1][left & ~right]), "left ROI alone: its labels"
    both = right & left
    assert np.all((pasted[both] == predictions[0][both]) | (pasted[both] == predictions[1][both]))
    assert np.array_equal(pasted[both] > 0, (predictions[0][both] > 0) | (predictions[1][both] > 0))
    assert not pasted[~(right | left)].any(), "background outside the boxes"
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000
    for name, value in (("kidney", 1), ("tumor", 2)):
        total = sum(per_side[name] for per_side in case_report["volumes_ml"].values())
        assert total == pytest.approx(np.count_nonzero(pasted == value) * voxel_ml, abs=1e-3)

    tumors = cc3d.connected_components((pasted == 2).astype(np.uint8), connectivity=26)
    assert len(case_report["tumors"]) == tumors.max() and case_report["report"] == [f"{found}_report.md",
                                                                                    f"{found}_report.png"]
    assert "not a medical device" in (out / f"{found}_report.md").read_text()
    assert (out / f"{found}_report.png").stat().st_size > 0

    empty = json.loads((out / f"{missing}.json").read_text())
    assert empty["kidneys_found"] == 0 and empty["rois"] == [] and "no kidney found" in empty["notes"]
    assert not _array(out / f"{missing}.nii.gz").any()


def test_predict_ct_takes_a_dicom_study_and_names_the_label_map_by_the_series(whole_cts, localized, predict_ct_run,
                                                                               tiny_dataset):
    """The first CT as a DICOM series beside its scout: the same boxes give the same label map as from NIfTI,
    and --dicom-seg writes it as a DICOM Segmentation too."""
    case = TARGET_CASES[0]
    study = predict_ct_run.root / "dicom_study"
    ct = sitk.ReadImage(str(whole_cts.images / f"{case}_0000.nii.gz"))
    write_dicom_series(ct, study / "series_1", "1.2.826.0.1.3680043.8.498.7.1")
    write_dicom_series(ct, study / "scout", "1.2.826.0.1.3680043.8.498.7.2", slice_positions=[0],
                       image_type="ORIGINAL\\PRIMARY\\LOCALIZER")
    series_id = series_case_id("1.2.826.0.1.3680043.8.498.7.1")
    report = json.loads(localized.path.read_text())
    report["cases"] = {series_id: report["cases"][case]}
    (predict_ct_run.root / "dicom_boxes.json").write_text(json.dumps(report))
    args = list(predict_ct_run.args)
    args[args.index("-i") + 1], args[args.index("--boxes") + 1] = study, predict_ct_run.root / "dicom_boxes.json"
    out = predict_ct_run.root / "dicom_out"
    run_command([*args, "-o", out, "--dicom-seg"], tiny_dataset.env)
    labels = _array(out / f"{series_id}.nii.gz")
    assert np.array_equal(labels, _array(predict_ct_run.out / f"{case}.nii.gz"))
    case_report = json.loads((out / f"{series_id}.json").read_text())
    assert case_report["dicom"]["series_instance_uid"] == "1.2.826.0.1.3680043.8.498.7.1"
    segmentation = highdicom.seg.segread(str(out / case_report["dicom_seg"]))
    read_back = segmentation.get_pixels_by_source_instance(
        source_sop_instance_uids=[pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
                                  for f in sorted((study / "series_1").glob("*.dcm"))], combine_segments=True)
    assert np.array_equal(read_back, labels), "the DICOM SEG holds the NIfTI label map voxel for voxel"
    listing = json.loads((out / "dicom_series.json").read_text())
    assert list(listing["dicom_series"]) == [series_id]
    assert [entry["folder"] for entry in listing["skipped_series"]] == ["scout"]


def test_predict_ct_gives_the_same_labels_for_the_ct_stored_in_other_orientations(whole_cts, localized,
                                                                                 predict_ct_run, tiny_dataset):
    """The first CT stored axial LPS, axial RAS and sagittal first, with the same kidney boxes: every ROI is
    brought to the orientation of the model's training ROIs and back, so the label maps agree (Dice >= 0.99;
    the ROI window's centre may round to the next voxel when an axis is flipped)."""
    case = TARGET_CASES[0]
    ct = sitk.ReadImage(str(whole_cts.images / f"{case}_0000.nii.gz"))
    reference = _array(predict_ct_run.out / f"{case}.nii.gz") > 0
    report = json.loads(localized.path.read_text())
    for code in ("LPS", "RAS", "SLP"):
        other = sitk.DICOMOrient(ct, code)
        folder = predict_ct_run.root / f"orientation_{code}"
        (folder / "cts").mkdir(parents=True)
        sitk.WriteImage(other, str(folder / "cts" / f"{case}_0000.nii.gz"))
        entry = json.loads(json.dumps(report["cases"][case]))
        for kidney in entry["kidneys"]:
            kidney["kidney_box"] = box_in(kidney["kidney_box"], ct, other)
        (folder / "boxes.json").write_text(json.dumps({**report, "cases": {case: entry}}))
        args = list(predict_ct_run.args)
        args[args.index("-i") + 1], args[args.index("--boxes") + 1] = folder / "cts", folder / "boxes.json"
        run_command([*args, "-o", folder / "out"], tiny_dataset.env)
        labels = sitk.DICOMOrient(sitk.ReadImage(str(folder / "out" / f"{case}.nii.gz")),
                                  orientation_code(ct.GetDirection()))
        assert labels.GetOrigin() == pytest.approx(ct.GetOrigin()) and labels.GetSize() == ct.GetSize()
        foreground = sitk.GetArrayFromImage(labels) > 0
        dice = 2 * np.count_nonzero(foreground & reference) / (foreground.sum() + reference.sum())
        assert dice >= 0.99, (code, dice)


def test_an_exported_pipeline_installed_elsewhere_predicts_the_same_labels(whole_cts, predict_ct_run, tiny_dataset):
    """`nnunet_ppm export` of the ROI model and the atlases, `nnunet_ppm install` into another nnUNet_results:
    predict-ct with the installed model gives the label maps of the original, and the atlases are in place."""
    root = predict_ct_run.root
    run_command(["nnunet_ppm", "export", "-d", tiny_dataset.dataset_id, "-tr", "PPMTrainer_debug", "-p",
                 "nnUNetPPMPlans", "-f", "0", "--atlases", whole_cts.atlases, "-o", root / "bundle.zip"],
                tiny_dataset.env)
    elsewhere = {**tiny_dataset.env, "nnUNet_results": str(root / "other_machine"), "nnUNet_raw": str(root / "none"),
                 "nnUNet_preprocessed": str(root / "none")}
    installed = run_command(["nnunet_ppm", "install", root / "bundle.zip"], elsewhere).stdout
    assert "--atlases" in installed and "nnunet_ppm predict-ct" in installed
    atlases = next((root / "other_machine").glob("Dataset*/PPMTrainer_debug__*/nnunet_ppm_atlases"))
    assert [a.name for a in load_atlases(atlases).atlases] == list(ATLAS_CASES)
    run_command([*predict_ct_run.args, "-o", root / "installed_out"], elsewhere)
    for case in TARGET_CASES:
        assert np.array_equal(_array(root / "installed_out" / f"{case}.nii.gz"),
                              _array(predict_ct_run.out / f"{case}.nii.gz")), case


def _ct_outputs(folder):
    """{file name: content} of predict-ct's per-CT outputs; the reports without their timings."""
    outputs = {}
    for path in sorted(folder.glob("case_*")):
        if path.suffix == ".json":
            report = json.loads(path.read_text())
            del report["seconds"]
            outputs[path.name] = report
        else:
            outputs[path.name] = path.read_bytes()
    return outputs


def test_predict_ct_killed_mid_cohort_completes_with_continue_prediction(predict_ct_run, tiny_dataset):
    run, killed = predict_ct_run, predict_ct_run.root / "killed"
    staged_predictions = lambda: list(killed.glob(".rois.partial-*/predictions/*.nii.gz"))  # noqa: E731
    kill_when([*run.args, "-o", killed], tiny_dataset.env, lambda: bool(staged_predictions()),
              run.root / "killed_output.txt")
    left = [p.name for p in killed.iterdir()]
    assert not _ct_outputs(killed), f"killed while predicting the ROIs, before any CT was written: {left}"
    assert any(name.startswith(".rois.partial-") for name in left), left

    rerun = run_command([*run.args, "-o", killed, "--continue_prediction"], tiny_dataset.env).stdout
    assert "(staging folder of a killed run)" in rerun
    assert _ct_outputs(killed) == _ct_outputs(run.out), "every CT, as the uninterrupted run wrote it"
    assert sorted(p.name for p in killed.iterdir() if p.name.startswith(".")) == [], "no staging folder left"

    for path in killed.glob("case_*"):  # a rewrite would give a file a new time
        os.utime(path, ns=(0, 0))
    again = run_command([*run.args, "-o", killed, "--continue_prediction"], tiny_dataset.env).stdout
    assert "wrote 0 CTs" in again
    assert all(path.stat().st_mtime_ns == 0 for path in killed.glob("case_*")), "--continue_prediction rewrote a CT"
