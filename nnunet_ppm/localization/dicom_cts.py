"""Whole CTs from a folder of DICOM studies: every series that is a CT volume becomes a case.

A hospital export holds, besides the CT volumes, localizers (scouts), dose
reports, secondary captures and reformats of few slices. :func:`find_ct_series`
walks the folder (subfolders included), groups the files into series (GDCM,
sorted by slice position) and takes a series when

* its Modality is CT and its SOP class is CT Image Storage;
* its Image Type does not say LOCALIZER;
* it has at least MIN_SLICES slices, all of one orientation, their positions
  evenly spaced along the slice normal (within SPACING_TOLERANCE of the median
  step) with no two slices at the same place.

Every other series is listed with the reason it was skipped. A series's case
id is ``ct_`` and the first 12 hex digits of the SHA-256 of its Series
Instance UID: short, the same on every run and machine, and never the
patient's name or ID; :meth:`DicomCt.describe` maps it back to the study and
series UIDs.
"""
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MIN_SLICES = 10
SPACING_TOLERANCE = 0.1
TAGS = {"modality": "0008|0060", "sop_class": "0008|0016", "image_type": "0008|0008", "study_uid": "0020|000d",
        "series_uid": "0020|000e", "position": "0020|0032", "orientation": "0020|0037"}


@dataclass(frozen=True)
class DicomCt:
    """One DICOM series that is a CT volume: its case id, UIDs and slice files (sorted by position)."""

    case_id: str
    study_uid: str
    series_uid: str
    files: Tuple[str, ...]

    def describe(self) -> dict:
        return {"study_instance_uid": self.study_uid, "series_instance_uid": self.series_uid,
                "slices": len(self.files)}


@dataclass(frozen=True)
class SkippedSeries:
    """A DICOM series that is not taken as a CT volume, and why."""

    folder: str
    series_uid: str
    reason: str

    def describe(self) -> dict:
        return {"folder": self.folder, "series_instance_uid": self.series_uid, "reason": self.reason}


def series_case_id(series_uid: str) -> str:
    """The case id of a series: ``ct_`` + 12 hex digits of the SHA-256 of its Series Instance UID."""
    return "ct_" + hashlib.sha256(series_uid.encode("ascii")).hexdigest()[:12]


def _tags(path: str) -> dict:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return {name: reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
            for name, tag in TAGS.items()}


def _numbers(text: str) -> Optional[np.ndarray]:
    try:
        return np.array([float(value) for value in text.split("\\")])
    except ValueError:
        return None


def why_not_a_ct_volume(slices: Sequence[dict]) -> Optional[str]:
    """None when the slices' tags (:data:`TAGS`, one dict per file, in GDCM's order) make a CT volume, else why not."""
    first = slices[0]
    if first["modality"] != "CT":
        return f"modality {first['modality'] or 'missing'}, not CT"
    if first["sop_class"] != CT_IMAGE_STORAGE:
        return f"SOP class {first['sop_class'] or 'missing'}, not CT Image Storage"
    if "LOCALIZER" in first["image_type"].upper().split("\\"):
        return f"a localizer (image type {first['image_type']})"
    if len(slices) < MIN_SLICES:
        return f"{len(slices)} slices, fewer than {MIN_SLICES}"
    orientations = {s["orientation"] for s in slices}
    orientation = _numbers(first["orientation"])
    positions = [_numbers(s["position"]) for s in slices]
    if len(orientations) > 1 or orientation is None or len(orientation) != 6:
        return "slices of more than one orientation" if len(orientations) > 1 else "no image orientation"
    if any(p is None or len(p) != 3 for p in positions):
        return "a slice without image position"
    normal = np.cross(orientation[:3], orientation[3:])
    steps = np.diff(np.sort([float(np.dot(p, normal)) for p in positions]))
    if steps.min() <= 1e-3:
        return "two slices at the same position"
    step = float(np.median(steps))
    if np.abs(steps - step).max() > SPACING_TOLERANCE * step:
        return f"uneven slice spacing ({steps.min():.2f} to {steps.max():.2f} mm)"
    return None


def find_ct_series(folder: Path) -> Tuple[List[DicomCt], List[SkippedSeries]]:
    """The CT volumes among the DICOM series under `folder` (sorted by case id), and the series skipped."""
    found, skipped = {}, []
    for directory, subdirectories, files in os.walk(folder):
        subdirectories.sort()
        if not files:
            continue  # GDCM warns about a folder without files
        for series_uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(directory):
            series_files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(directory, series_uid))
            where = os.path.relpath(directory, folder)
            reason = why_not_a_ct_volume([_tags(path) for path in series_files])
            case_id = series_case_id(series_uid)
            if reason is None and case_id in found:
                reason = f"the same series as {found[case_id].files[0]}"
            if reason is not None:
                skipped.append(SkippedSeries(where, series_uid, reason))
                continue
            found[case_id] = DicomCt(case_id, _tags(series_files[0])["study_uid"], series_uid, series_files)
    return [found[case_id] for case_id in sorted(found)], skipped
