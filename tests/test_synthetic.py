"""The synthetic CT generator: deterministic, plausible HU and anatomy, every layout, painting onto real labels."""
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.labels import CYST, KIDNEY, TUMOR
from nnunet_ppm.dataset_conversion.layouts import case_paths, get_layout
from nnunet_ppm.dataset_conversion.orientation import AXIAL_DIRECTION, KITS_DIRECTION, slice_axis
from nnunet_ppm.dataset_conversion.roi import find_kidneys, kidney_map
from nnunet_ppm.dataset_conversion.synthesize import PRESETS, synthesize, synthesize_case


def smallest_label_files(folder, count):
    return sorted(folder.glob("case_*.nii.gz"), key=lambda p: p.stat().st_size)[:count]


def test_cases_depend_only_on_seed_and_index():
    ct, label, spacing = synthesize_case(3, seed=7)
    ct_again, label_again, spacing_again = synthesize_case(3, seed=7)
    assert np.array_equal(ct, ct_again) and np.array_equal(label, label_again) and spacing == spacing_again
    other_ct, other_label, _ = synthesize_case(3, seed=8)
    assert other_ct.shape != ct.shape or not np.array_equal(other_ct, ct)
    assert other_label.shape != label.shape or not np.array_equal(other_label, label), "another anatomy, not noise"


@pytest.mark.parametrize("index", range(6))
def test_tiny_cases_have_plausible_anatomy_and_hu(index):
    ct, label, spacing = synthesize_case(index, seed=0, preset="tiny")
    preset = PRESETS["tiny"]
    assert ct.dtype == np.int16 and label.dtype == np.uint8
    assert preset.slices[0] <= ct.shape[0] <= preset.slices[1] and ct.shape[1:] == preset.in_plane_voxels
    assert spacing[0] in preset.slice_mm and spacing[1] == spacing[2] and spacing[0] != spacing[1]
    assert kidney_map(label, spacing)[1] == 2, "two kidneys"
    assert np.any(label == TUMOR), "at least one tumor"
    assert ct.min() == -1024 and np.median(ct[:, :2, :]) < -900, "air around the body"
    body = ct > -500
    assert np.count_nonzero((ct > -130) & (ct < -60)) > 0.1 * body.sum(), "plenty of fat"
    assert np.count_nonzero(ct > 400) > 50, "bone"
    kidney_hu = np.median(ct[label == KIDNEY])
    tumor_hu = np.median(ct[label == TUMOR])
    assert 80 < kidney_hu < 260 and -20 < tumor_hu < 300
    fat_or_soft = np.median(ct[body & (label == 0)])
    assert fat_or_soft < kidney_hu - 50, "enhancing kidney is brighter than its surroundings"


def test_kidneys_are_left_and_right_of_the_spine_and_right_one_lower():
    for index in range(4):
        _, label, spacing = synthesize_case(index, seed=1)
        image = sitk.GetImageFromArray(label)
        image.SetSpacing(spacing[::-1])
        kidneys = {k.side: k for k in find_kidneys(image)}
        assert set(kidneys) == {"left", "right"}
        assert kidneys["left"].bounds[2][0] > kidneys["right"].bounds[2][1], "left kidney at larger x (LPS)"


@pytest.mark.parametrize("layout", ["roi", "kits19", "kits21", "kits23"])
def test_synthesize_writes_each_layout(tmp_path, layout):
    out = synthesize(tmp_path / "src", num_cases=2, seed=0, layout=layout, progress=False)
    case_ids = ["synth_000", "synth_001"] if layout == "roi" else ["case_00000", "case_00001"]
    for case_id in case_ids:
        image_path, label_path = case_paths(get_layout(layout), out, case_id)
        image, label = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(label_path))
        assert image.GetDirection() == pytest.approx(AXIAL_DIRECTION if layout == "roi" else KITS_DIRECTION)
        assert image.GetSize() == label.GetSize() and image.GetSpacing() == label.GetSpacing()
        values = set(np.unique(sitk.GetArrayViewFromImage(label)).tolist())
        assert {0, KIDNEY, TUMOR} <= values <= set(get_layout(layout).label_values)
    if layout != "roi":
        assert slice_axis(image.GetDirection()) == 2, "KiTS keep the slice axis last in array order"
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "no staging folder left behind"


def test_same_layout_in_kits_orientation_holds_the_same_case(tmp_path):
    axial = synthesize(tmp_path / "roi", num_cases=1, layout="roi", progress=False)
    kits = synthesize(tmp_path / "kits", num_cases=1, layout="kits21", progress=False)
    a = sitk.ReadImage(str(axial / "synth_000" / "image.nii.gz"))
    k = sitk.ReadImage(str(kits / "data" / "case_00000" / "imaging.nii.gz"))
    k_as_axial = sitk.DICOMOrient(k, "LPS")
    assert np.array_equal(sitk.GetArrayViewFromImage(k_as_axial), sitk.GetArrayViewFromImage(a))


def test_workers_give_the_same_cases(tmp_path):
    one = synthesize(tmp_path / "one", num_cases=2, seed=4, progress=False)
    two = synthesize(tmp_path / "two", num_cases=2, seed=4, num_processes=2, progress=False)
    for case in ("synth_000", "synth_001"):
        for name in ("image.nii.gz", "label.nii.gz"):
            assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(one / case / name))),
                                  sitk.GetArrayFromImage(sitk.ReadImage(str(two / case / name))))


def test_existing_output_needs_overwrite(tmp_path):
    out = synthesize(tmp_path / "src", num_cases=1, progress=False)
    with pytest.raises(FileExistsError):
        synthesize(out, num_cases=2, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["synth_000"]
    synthesize(out, num_cases=2, overwrite=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["synth_000", "synth_001"]


def test_painting_keeps_the_real_label_map_exactly(tmp_path, kits19_labels_dir):
    source = smallest_label_files(kits19_labels_dir, 1)[0]
    out = synthesize(tmp_path / "painted", labels_from=[source], layout="kits19", progress=False)
    case_id = source.name[: -len(".nii.gz")]
    image_path, label_path = case_paths(get_layout("kits19"), out, case_id)
    original, written, ct = (sitk.ReadImage(str(p)) for p in (source, label_path, image_path))
    assert np.array_equal(sitk.GetArrayViewFromImage(written), sitk.GetArrayViewFromImage(original))
    assert written.GetPixelID() == original.GetPixelID()
    for image in (written, ct):
        assert image.GetSize() == original.GetSize() and image.GetSpacing() == original.GetSpacing()
        assert image.GetOrigin() == original.GetOrigin() and image.GetDirection() == original.GetDirection()
    label, hu = sitk.GetArrayViewFromImage(original), sitk.GetArrayViewFromImage(ct)
    assert np.median(hu[label == KIDNEY]) > np.median(hu[(label == 0) & (hu > -500)]) + 50


def test_painted_cysts_become_kidney_only_where_the_layout_has_no_cyst(tmp_path):
    seed = next(s for s in range(50) if np.any(synthesize_case(0, s)[1] == CYST))
    _, label, spacing = synthesize_case(0, seed)
    label_image = sitk.GetImageFromArray(label)
    label_image.SetSpacing(spacing[::-1])
    sitk.WriteImage(label_image, str(tmp_path / "case_00400.nii.gz"))
    for layout in ("kits23", "kits19"):
        out = synthesize(tmp_path / layout, labels_from=[tmp_path / "case_00400.nii.gz"], layout=layout, progress=False)
        written = sitk.GetArrayFromImage(sitk.ReadImage(str(case_paths(get_layout(layout), out, "case_00400")[1])))
        assert np.array_equal(written, label if layout == "kits23" else np.where(label == CYST, KIDNEY, label))


def test_other_contrast_phases_keep_the_anatomy_and_move_the_enhancing_tissues():
    arterial_ct, label, _ = synthesize_case(3, seed=7)
    assert np.array_equal(synthesize_case(3, seed=7, phase="arterial")[0], arterial_ct), "the default phase"
    parenchyma = label == KIDNEY
    medians = {"arterial": float(np.median(arterial_ct[parenchyma]))}
    for phase in ("venous", "non-contrast"):
        ct, same_label, _ = synthesize_case(3, seed=7, phase=phase)
        assert np.array_equal(same_label, label), f"{phase}: the same anatomy"
        medians[phase] = float(np.median(ct[parenchyma]))
        fat = (arterial_ct < -60) & (label == 0)
        assert abs(float(np.median(ct[fat])) - float(np.median(arterial_ct[fat]))) < 3, f"{phase}: fat unchanged"
    assert medians["non-contrast"] < 60 < medians["venous"], medians
    with pytest.raises(ValueError, match="unknown contrast phase"):
        synthesize_case(3, seed=7, phase="delayed")
