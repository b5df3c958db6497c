"""`convert_dataset`: nnU-Net raw datasets from the source layouts, held-out splits, safe output."""
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.convert import convert_dataset
from nnunet_ppm.dataset_conversion.synthesize import synthesize


@pytest.fixture(scope="module")
def tiny_roi_source(tmp_path_factory):
    """Three tiny synthetic patients in the paper's ROI layout (read-only for the tests)."""
    return synthesize(tmp_path_factory.mktemp("sources") / "roi", num_cases=3, seed=0, layout="roi", progress=False)


def read_array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_roi_layout_becomes_an_nnunet_raw_dataset(tiny_roi_source, tmp_path):
    folder = convert_dataset(tiny_roi_source, 501, raw_dir=tmp_path, progress=False)
    assert folder == tmp_path / "Dataset501_KidneyTumor"
    dataset = json.loads((folder / "dataset.json").read_text())
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
        assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 2
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
