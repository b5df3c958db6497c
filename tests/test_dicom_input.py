"""Whole CTs from DICOM studies (nnunet_ppm.localization.dicom_cts): CT volumes taken, everything else listed;
label maps written back as DICOM Segmentation objects (nnunet_ppm.whole_ct.dicom_seg) and read back."""
import json

import highdicom
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from dicom_files import STUDY_UID, write_dicom_series
from nnunet_ppm.localization.dicom_cts import series_case_id
from nnunet_ppm.dataset_conversion.orientation import KITS_DIRECTION
from nnunet_ppm.localization.localizer import read_ct_folder
from nnunet_ppm.whole_ct.dicom_seg import RESEARCH_ONLY, write_dicom_seg

CT_SERIES = "1.2.826.0.1.3680043.8.498.1.1"


def _ct(slices: int = 14) -> sitk.Image:
    hu = np.random.default_rng(0).integers(-1024, 1500, size=(slices, 24, 20)).astype(np.int16)
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((0.75, 0.8, 2.5))
    image.SetOrigin((-120.5, 33.25, 410.0))
    return image


@pytest.fixture
def study(tmp_path):
    """A study as a hospital exports it: a CT volume, its scout, a dose-report-like capture, a short reformat
    and a series with a missing slice, each in a subfolder."""
    root = tmp_path / "export" / "STUDY1"
    ct = _ct()
    write_dicom_series(ct, root / "SER1", CT_SERIES)
    write_dicom_series(_ct(1), root / "SER2", f"{CT_SERIES}.2", image_type="ORIGINAL\\PRIMARY\\LOCALIZER")
    write_dicom_series(_ct(12), root / "SER3", f"{CT_SERIES}.3", modality="OT")
    write_dicom_series(_ct(5), root / "SER4", f"{CT_SERIES}.4")
    write_dicom_series(_ct(), root / "SER5", f"{CT_SERIES}.5", slice_positions=[*range(6), *range(7, 14)])
    return tmp_path / "export", ct


def test_every_ct_volume_is_a_case_named_by_its_series_and_the_rest_is_listed_with_why(study):
    folder, ct = study
    inputs = read_ct_folder(folder)
    assert [case.case_id for case in inputs.cases] == [series_case_id(CT_SERIES)]
    case = inputs.cases[0]
    assert case.case_id.startswith("ct_") and len(case.case_id) == 15 and case.output_ending == ".nii.gz"
    assert np.array_equal(sitk.GetArrayFromImage(case.image), sitk.GetArrayFromImage(ct)), "voxel for voxel"
    assert np.allclose(case.image.GetSpacing(), ct.GetSpacing()) and np.allclose(case.image.GetOrigin(),
                                                                                  ct.GetOrigin())
    reasons = {entry.folder: entry.reason for entry in inputs.skipped}
    assert reasons.keys() == {"STUDY1/SER2", "STUDY1/SER3", "STUDY1/SER4", "STUDY1/SER5"}
    assert "localizer" in reasons["STUDY1/SER2"] and "modality OT" in reasons["STUDY1/SER3"]
    assert "5 slices" in reasons["STUDY1/SER4"] and "uneven slice spacing" in reasons["STUDY1/SER5"]
    described = inputs.describe()
    assert described["dicom_series"] == {case.case_id: {"study_instance_uid": STUDY_UID,
                                                        "series_instance_uid": CT_SERIES, "slices": 14}}
    assert len(described["skipped_series"]) == 4
    assert "Doe" not in json.dumps(described) and "PATIENT-0042" not in json.dumps(described)
    assert read_ct_folder(folder).cases[0].case_id == case.case_id, "the same id on every run"


def test_nnunet_naming_comes_first_and_a_folder_without_cts_names_what_it_skipped(study, tmp_path):
    folder, ct = study
    sitk.WriteImage(ct, str(folder / "case_1_0000.nii.gz"))
    assert [case.case_id for case in read_ct_folder(folder).cases] == ["case_1"]
    only_scout = tmp_path / "scout_only"
    write_dicom_series(_ct(1), only_scout, f"{CT_SERIES}.9", image_type="ORIGINAL\\PRIMARY\\LOCALIZER")
    with pytest.raises(FileNotFoundError, match="no DICOM CT series.*localizer"):
        read_ct_folder(only_scout)


def test_a_dicom_seg_of_a_label_map_reads_back_voxel_for_voxel_over_its_source_slices(tmp_path):
    ct = _ct()
    ct.SetDirection(KITS_DIRECTION)  # slices that are not axial: geometry comes from the source, not from us
    write_dicom_series(ct, tmp_path / "ct", CT_SERIES)
    case = read_ct_folder(tmp_path / "ct").cases[0]
    labels = np.zeros(sitk.GetArrayViewFromImage(case.image).shape, np.uint8)
    labels[3:9, 5:15, 4:12] = 1
    labels[5:7, 8:11, 6:9] = 2
    write_dicom_seg(labels, case.dicom.files, {"background": 0, "kidney": 1, "tumor": 2}, tmp_path / "seg.dcm")
    segmentation = highdicom.seg.segread(str(tmp_path / "seg.dcm"))
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in case.dicom.files]
    read_back = segmentation.get_pixels_by_source_instance(
        source_sop_instance_uids=[source.SOPInstanceUID for source in sources], combine_segments=True)
    assert np.array_equal(read_back, labels)
    assert [(s.SegmentNumber, s.SegmentLabel) for s in segmentation.SegmentSequence] == [(1, "kidney"), (2, "tumor")]
    assert segmentation.StudyInstanceUID == STUDY_UID and segmentation.ImageComments == RESEARCH_ONLY
    assert "not a medical device" in segmentation.SeriesDescription
    assert segmentation.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    with pytest.raises(ValueError, match="does not match 14 slices"):
        write_dicom_seg(labels[1:], case.dicom.files, {"kidney": 1}, tmp_path / "wrong.dcm")
    assert not (tmp_path / "wrong.dcm").exists()
