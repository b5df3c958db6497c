"""Writing test CTs as DICOM series with SimpleITK (one file per slice, as a scanner exports them)."""
from pathlib import Path
from typing import Optional, Sequence

import SimpleITK as sitk

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


def write_dicom_series(image: sitk.Image, folder: Path, series_uid: str, modality: str = "CT",
                       image_type: str = "ORIGINAL\\PRIMARY\\AXIAL",
                       slice_positions: Optional[Sequence[int]] = None) -> Path:
    """`image` (int16 HU) as a DICOM series in `folder`: slices along its third index axis (all of them, or the
    indices `slice_positions`), with the image's geometry, the study STUDY_UID and the patient 'Doe^Jane'."""
    folder.mkdir(parents=True, exist_ok=True)
    d = image.GetDirection()
    orientation = "\\".join(f"{v:.10g}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for number, z in enumerate(slice_positions or range(image.GetDepth())):
        slice_ = image[:, :, z]
        tags = {"0008|0060": modality, "0008|0008": image_type, "0020|000d": STUDY_UID, "0020|000e": series_uid,
                "0020|0052": f"{STUDY_UID}.100",  # frame of reference
                "0008|0018": f"{series_uid}.{number + 1}", "0020|0013": str(number + 1),
                "0020|0032": "\\".join(f"{v:.10g}" for v in image.TransformIndexToPhysicalPoint((0, 0, z))),
                "0020|0037": orientation, "0018|0050": f"{image.GetSpacing()[2]:.10g}",
                "0010|0010": "Doe^Jane", "0010|0020": "PATIENT-0042"}
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{number:04d}.dcm"))
        writer.Execute(slice_)
    return folder
