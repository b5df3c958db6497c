"""`convert_dataset`: nnU-Net raw datasets from the source layouts, held-out splits, safe output."""
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_ppm.dataset_conversion.convert import convert_dataset
from nnunet_ppm.dataset_conversion.labels import CYST
from nnunet_ppm.dataset_conversion.synthesize import synthesize, synthesize_case


@pytest.fixture(scope="module")
def tiny_roi_source(tmp_path_factory):
    """Three tiny synthetic patients in the paper's ROI layout (read-only for the tests)."""
    return synthesize(tmp_path_factory.mktemp("sources") / "roi", num_cases=3, seed=0, layout="roi", progress=False)


def read_array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_roi_layout_becomes_an_nnunet_raw_dataset(tiny_roi_source, tmp_path):
    folder = convert_dataset(tiny_roi_source, 501, raw_dir=tmp_path, progress=False)
    assert folder == tmp_path / "Dataset501_KidneyTumor"
    dataset = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    assert dataset["channel_names"] == {"0": "CT"}
    assert dataset["labels"] == {"background": 0, "kidney": 1, "tumor": 2}
    assert dataset["numTraining"] == 3 and dataset["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [f"synth_00{i}_0000.nii.gz" for i in range(3)]
    for case in ("synth_000", "synth_002"):
        source = sitk.ReadImage(str(tiny_roi_source / case / "image.nii.gz"))
        image = sitk.ReadImage(str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
        assert np.array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(source))
        assert image.GetOrigin() == source.GetOrigin() and image.GetDirection() == source.GetDirection()
        assert np.array_equal(read_array(folder / "labelsTr" / f"{case}.nii.gz"),
                              read_array(tiny_roi_source / case / "label.nii.gz"))
    assert not (folder / "imagesTs").exists() and not (folder / "roi_manifest.json").exists()


def test_held_out_split_is_seeded_and_moves_whole_patients(tiny_roi_source, tmp_path):
    first = convert_dataset(tiny_roi_source, 502, raw_dir=tmp_path / "a", test_cases=1, split_seed=3, progress=False)
    again = convert_dataset(tiny_roi_source, 502, raw_dir=tmp_path / "b", test_fraction=0.34, split_seed=3, progress=False)
    for folder in (first, again):
        assert len(list((folder / "imagesTr").iterdir())) == 2 and len(list((folder / "imagesTs").iterdir())) == 1
        assert json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 2
    assert sorted(p.name for p in (first / "labelsTs").iterdir()) == sorted(p.name for p in (again / "labelsTs").iterdir())
    with pytest.raises(ValueError, match="at least one must stay for training"):
        convert_dataset(tiny_roi_source, 503, raw_dir=tmp_path / "c", test_cases=3, progress=False)
    assert not (tmp_path / "c").exists()


def test_existing_dataset_needs_overwrite_and_ids_are_not_shared(tiny_roi_source, tmp_path):
    folder = convert_dataset(tiny_roi_source, 504, raw_dir=tmp_path, progress=False)
    marker = folder / "imagesTr" / "synth_000_0000.nii.gz"
    before = marker.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_dataset(tiny_roi_source, 504, raw_dir=tmp_path, test_cases=1, progress=False)
    assert marker.read_bytes() == before and not (folder / "imagesTs").exists()
    with pytest.raises(ValueError, match="already used by Dataset504_KidneyTumor"):
        convert_dataset(tiny_roi_source, 504, name="Other", raw_dir=tmp_path, progress=False)
    convert_dataset(tiny_roi_source, 504, raw_dir=tmp_path, test_cases=1, overwrite=True, progress=False)
    assert len(list((folder / "imagesTs").iterdir())) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset504_KidneyTumor"], "no staging or old folders left"


def test_overwrite_never_deletes_a_source_inside_the_dataset_folder(tiny_roi_source, tmp_path):
    source = tmp_path / "Dataset505_Mine" / "original"
    shutil.copytree(tiny_roi_source, source)
    with pytest.raises(ValueError, match="contains the input"):
        convert_dataset(source, 505, name="Mine", raw_dir=tmp_path, overwrite=True, progress=False)
    assert sorted(p.name for p in source.iterdir()) == ["synth_000", "synth_001", "synth_002"]


@pytest.fixture(scope="module")
def kits19_source(tmp_path_factory):
    """Two tiny synthetic KiTS19 cases (slice axis last in array order), as the release root holding data/."""
    return synthesize(tmp_path_factory.mktemp("sources") / "kits19", num_cases=2, seed=0, layout="kits19", progress=False)


def source_index_grids(box, roi_shape):
    return np.meshgrid(*[np.arange(start, start + n) for (start, _), n in zip(box, roi_shape)], indexing="ij")


def test_manifest_boxes_map_roi_voxels_back_to_their_source_voxels(kits19_source, tmp_path):
    folder = convert_dataset(kits19_source, 520, "kits19", roi=True, keep_healthy=True, raw_dir=tmp_path, progress=False)
    manifest = json.loads((folder / "roi_manifest.json").read_text(encoding="utf-8"))
    assert [set(entry) for entry in manifest] == [{"roi_case", "source_case", "side", "box"}] * 4
    assert sorted(e["roi_case"] for e in manifest) == ["case_00000_left", "case_00000_right", "case_00001_left", "case_00001_right"]
    padded = 0
    for entry in manifest:
        source_dir = kits19_source / "data" / entry["source_case"]
        for role, source_name, roi_dir, suffix, pad in (("image", "imaging", "imagesTr", "_0000", -1024),
                                                        ("label", "segmentation", "labelsTr", "", 0)):
            source = sitk.ReadImage(str(source_dir / f"{source_name}.nii.gz"))
            roi = sitk.ReadImage(str(folder / roi_dir / f"{entry['roi_case']}{suffix}.nii.gz"))
            source_array, roi_array = sitk.GetArrayViewFromImage(source), sitk.GetArrayViewFromImage(roi)
            assert [stop - start for start, stop in entry["box"]] == list(roi_array.shape)
            indices = source_index_grids(entry["box"], roi_array.shape)
            inside = np.all([(i >= 0) & (i < n) for i, n in zip(indices, source_array.shape)], axis=0)
            clipped = tuple(np.clip(i, 0, n - 1) for i, n in zip(indices, source_array.shape))
            assert np.array_equal(roi_array[inside], source_array[clipped][inside]), role
            assert np.all(roi_array[~inside] == pad), role
            padded += int(np.count_nonzero(~inside))
            start = [int(s) for s, _ in entry["box"][::-1]]
            assert roi.GetOrigin() == pytest.approx(source.TransformIndexToPhysicalPoint(start))
    assert padded > 0, "the default 150-voxel window is larger than tiny cases, so padding was exercised"


def test_each_roi_holds_every_voxel_of_its_kidney(kits19_source, tmp_path):
    folder = convert_dataset(kits19_source, 521, "kits19", roi=True, roi_size="90mm", keep_healthy=True,
                             raw_dir=tmp_path, progress=False)
    manifest = {(e["source_case"], e["side"]): e["box"] for e in json.loads((folder / "roi_manifest.json").read_text(encoding="utf-8"))}
    for case in ("case_00000", "case_00001"):
        label_image = sitk.ReadImage(str(kits19_source / "data" / case / "segmentation.nii.gz"))
        label = sitk.GetArrayViewFromImage(label_image)
        components, count = ndimage.label(label > 0, np.ones((3, 3, 3)))
        assert count == 2
        centroids_x = [label_image.TransformContinuousIndexToPhysicalPoint(
            [float(c) for c in ndimage.center_of_mass(components == k)[::-1]])[0] for k in (1, 2)]
        for k in (1, 2):
            side = "left" if centroids_x[k - 1] == max(centroids_x) else "right"  # LPS: x grows to the left
            box = manifest[(case, side)]
            voxels = np.argwhere(components == k)
            assert all(start <= voxels[:, a].min() and voxels[:, a].max() < stop for a, (start, stop) in enumerate(box))
            roi_label = read_array(folder / "labelsTr" / f"{case}_{side}.nii.gz")
            assert np.count_nonzero(roi_label) >= len(voxels)


def test_only_tumor_kidneys_by_default(kits19_source, tmp_path):
    everything = json.loads((convert_dataset(kits19_source, 522, "kits19", roi=True, keep_healthy=True,
                                             raw_dir=tmp_path / "a", progress=False) / "roi_manifest.json").read_text(encoding="utf-8"))
    folder = convert_dataset(kits19_source, 522, "kits19", roi=True, raw_dir=tmp_path / "b", progress=False)
    tumor_rois = json.loads((folder / "roi_manifest.json").read_text(encoding="utf-8"))
    assert 2 <= len(tumor_rois) < len(everything)
    for entry in tumor_rois:
        assert np.any(read_array(folder / "labelsTr" / f"{entry['roi_case']}.nii.gz") == 2)


def test_workers_give_the_same_dataset(kits19_source, tmp_path):
    one = convert_dataset(kits19_source, 523, "kits19", roi=True, keep_healthy=True, raw_dir=tmp_path / "1", progress=False)
    two = convert_dataset(kits19_source, 523, "kits19", roi=True, keep_healthy=True, raw_dir=tmp_path / "2",
                          num_processes=2, progress=False)
    assert (one / "roi_manifest.json").read_text(encoding="utf-8") == (two / "roi_manifest.json").read_text(encoding="utf-8")
    for path in sorted((one / "imagesTr").iterdir()) + sorted((one / "labelsTr").iterdir()):
        assert np.array_equal(read_array(path), read_array(two / path.parent.name / path.name))


def test_kits19_reports_and_skips_cases_without_imaging_or_labels(kits19_source, tmp_path):
    source = tmp_path / "kits19"
    shutil.copytree(kits19_source / "data", source)  # the case folders directly, no data/ level
    (source / "case_00007").mkdir()
    shutil.copy(source / "case_00000" / "segmentation.nii.gz", source / "case_00007")
    (source / "case_00210").mkdir()
    shutil.copy(source / "case_00000" / "imaging.nii.gz", source / "case_00210")
    folder = convert_dataset(source, 524, "kits19", raw_dir=tmp_path / "raw", progress=False)
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["case_00000.nii.gz", "case_00001.nii.gz"]
    skipped = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["nnunet_ppm"]["skipped"]
    assert skipped == {"case_00007": "no imaging", "case_00210": "no segmentation"}


@pytest.fixture(scope="module")
def kits_sources_with_cyst(tmp_path_factory):
    """KiTS21 and KiTS23 layouts of the same tiny cases, chosen so that at least one holds a cyst."""
    seed = next(s for s in range(50) if any(np.any(synthesize_case(i, s)[1] == CYST) for i in range(2)))
    root = tmp_path_factory.mktemp("sources")
    return {layout: synthesize(root / layout, num_cases=2, seed=seed, layout=layout, progress=False)
            for layout in ("kits21", "kits23")}


@pytest.mark.parametrize("layout", ["kits21", "kits23"])
def test_cysts_merge_into_kidney_unless_kept(kits_sources_with_cyst, tmp_path, layout):
    source = kits_sources_with_cyst[layout]
    seg_name = "aggregated_MAJ_seg" if layout == "kits21" else "segmentation"
    sub = "data" if layout == "kits21" else "dataset"
    merged = convert_dataset(source, 530, layout, raw_dir=tmp_path / "merged", progress=False)
    kept = convert_dataset(source, 530, layout, keep_cyst=True, raw_dir=tmp_path / "kept", progress=False)
    assert json.loads((kept / "dataset.json").read_text(encoding="utf-8"))["labels"]["cyst"] == 3
    assert "cyst" not in json.loads((merged / "dataset.json").read_text(encoding="utf-8"))["labels"]
    for case in ("case_00000", "case_00001"):
        original = read_array(source / sub / case / f"{seg_name}.nii.gz")
        assert np.array_equal(read_array(kept / "labelsTr" / f"{case}.nii.gz"), original)
        assert np.array_equal(read_array(merged / "labelsTr" / f"{case}.nii.gz"), np.where(original == CYST, 1, original))
    with pytest.raises(ValueError, match="keep_cyst needs a layout with cysts"):
        convert_dataset(source, 531, "kits19", keep_cyst=True, raw_dir=tmp_path / "x", progress=False)


def write_dicom_series(image, folder):
    """One CT slice per file, with the tags a series reader needs to stack them."""
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    orientation = "\\".join(str(v) for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7]))
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        for tag, value in (("0008|0060", "CT"), ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),
                           ("0020|000e", "1.2.826.0.1.3680043.2.1125.2"), ("0020|0037", orientation),
                           ("0020|0032", "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k)))),
                           ("0020|0013", str(k + 1))):
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(plane)


def test_roi_layout_reads_a_dicom_series_folder(tiny_roi_source, tmp_path):
    source = tmp_path / "src"
    (source / "patient_a").mkdir(parents=True)
    shutil.copy(tiny_roi_source / "synth_000" / "label.nii.gz", source / "patient_a")
    original = sitk.ReadImage(str(tiny_roi_source / "synth_000" / "image.nii.gz"))
    write_dicom_series(original, source / "patient_a" / "image")
    folder = convert_dataset(source, 540, raw_dir=tmp_path / "raw", progress=False)
    converted = sitk.ReadImage(str(folder / "imagesTr" / "patient_a_0000.nii.gz"))
    assert np.array_equal(sitk.GetArrayViewFromImage(converted), sitk.GetArrayViewFromImage(original))
    assert converted.GetSpacing() == pytest.approx(original.GetSpacing(), rel=1e-4)
