"""What a kidney localiser is and what it reports.

A localiser looks at a whole CT and returns, per kidney it finds, the side and
the kidney's box in the CT's voxel indices: ``((z0, z1), (y0, y1), (x0, x1))``,
SimpleITK array order, half-open -- the box convention of roi_manifest.json
(:mod:`nnunet_ppm.dataset_conversion.roi`), here the tight box of the kidney
(kidney and tumor), not yet the ROI window around it. Whole-CT prediction
turns it into an ROI exactly as ``convert --roi`` does
(:func:`~nnunet_ppm.dataset_conversion.roi.roi_box`).

Implementations: :class:`~.atlas_localizer.AtlasLocalizer` (multi-atlas
registration, the paper's way), :class:`~.nnunet_localizer.NnunetLocalizer`
(a coarse nnU-Net model trained on whole CTs) and
:class:`~.boxes_localizer.BoxesLocalizer` (boxes a user gives in JSON).

A CT where no kidney is found gives a :class:`Localization` without kidneys
and a note saying why; it is not an error.
"""
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.image_files import file_ending, read_image
from nnunet_ppm.dataset_conversion.orientation import anatomical_axes
from nnunet_ppm.dataset_conversion.roi import Box
from nnunet_ppm.localization.dicom_cts import DicomCt, SkippedSeries, find_ct_series

SIDES = ("right", "left")


@dataclass
class CtCase:
    """One whole CT: its case id and file (or DICOM series); the image is read once, when first needed."""

    case_id: str
    path: Path  # the image file, or the folder of a DICOM series
    dicom: Optional[DicomCt] = None

    @cached_property
    def image(self) -> sitk.Image:
        if self.dicom is None:
            return read_image(self.path)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(self.dicom.files)
        return reader.Execute()

    @property
    def output_ending(self) -> str:
        """File ending of this CT's label map: the CT's own, NIfTI for a DICOM series."""
        return ".nii.gz" if self.dicom is not None else file_ending(self.path)


@dataclass(frozen=True)
class LocatedKidney:
    """A kidney found in a CT: side, tight box in the CT's voxel indices, and the localiser's confidence (0-1)."""

    side: str
    box: Box
    confidence: Optional[float] = None

    def to_json(self) -> dict:
        entry = {"side": self.side, "kidney_box": [list(axis) for axis in self.box]}
        if self.confidence is not None:
            entry["confidence"] = round(self.confidence, 4)
        return entry


@dataclass
class Localization:
    """What a localiser found in one CT, and how long it took."""

    case: str
    kidneys: List[LocatedKidney]
    seconds: float = 0.0
    notes: List[str] = field(default_factory=list)

    @property
    def confidence(self) -> Optional[float]:
        """Mean confidence of the kidneys found (None when none was found or the localiser gives none)."""
        values = [k.confidence for k in self.kidneys if k.confidence is not None]
        return float(np.mean(values)) if values else None

    def to_json(self) -> dict:
        confidence = self.confidence
        return {"kidneys": [kidney.to_json() for kidney in self.kidneys], "seconds": round(self.seconds, 3),
                "confidence": None if confidence is None else round(confidence, 4), "notes": self.notes}


def grow_box(box: Box, margin_mm: float, spacing: Sequence[float], shape: Sequence[int]) -> Box:
    """`box` grown by `margin_mm` on every side (spacing in array order), clipped to an image of `shape`."""
    grown = []
    for (start, stop), step, size in zip(box, spacing, shape):
        margin = int(math.ceil(margin_mm / step - 1e-9))
        grown.append((max(start - margin, 0), min(stop + margin, size)))
    return tuple(grown)


def box_in(box: Box, image: sitk.Image, other: sitk.Image) -> Box:
    """`box` (array order, half-open) of `image` as the box of the same voxels in `other`, the same voxel grid
    stored in another orientation (axes permuted or flipped, e.g. by ``sitk.DICOMOrient``)."""
    corners = [(x, y, z) for z in (box[0][0], box[0][1] - 1) for y in (box[1][0], box[1][1] - 1)
               for x in (box[2][0], box[2][1] - 1)]
    indices = np.array([other.TransformPhysicalPointToIndex(image.TransformIndexToPhysicalPoint(corner))
                        for corner in corners])[:, ::-1]
    return tuple((int(indices[:, axis].min()), int(indices[:, axis].max()) + 1) for axis in range(3))


EDGE_NAMES = (("lower", "upper"), ("front", "back"), ("right", "left"))  # per canonical axis: low, high end


def edge_notes(side: str, box: Box, image: sitk.Image) -> List[str]:
    """A note for each edge of the scan that a kidney's box (before any margin) reaches: the kidney may be cut off
    there (a scan that starts or ends inside a kidney)."""
    shape = image.GetSize()[::-1]
    try:
        axes = anatomical_axes(image.GetDirection())
    except ValueError:  # too oblique to name the edges anatomically
        axes = None
    edges = []
    for axis, ((start, stop), size) in enumerate(zip(box, shape)):
        if axes is None:
            low, high = f"first (array axis {axis})", f"last (array axis {axis})"
        else:
            canonical, sense = axes[axis]
            low, high = EDGE_NAMES[canonical] if sense > 0 else EDGE_NAMES[canonical][::-1]
        edges += [low] if start <= 0 else []
        edges += [high] if stop >= size else []
    return [f"{side} kidney reaches the scan's {edge} edge: it may be cut off there" for edge in edges]


def check_box(box: Sequence[Sequence[int]], shape: Sequence[int]) -> Optional[str]:
    """None if `box` is a non-empty half-open box inside an array of `shape`, else what is wrong with it."""
    if len(box) != 3 or any(len(axis) != 2 for axis in box):
        return f"box {box} is not [[z0, z1], [y0, y1], [x0, x1]]"
    for axis, ((start, stop), size) in enumerate(zip(box, shape)):
        if not (isinstance(start, int) and isinstance(stop, int)):
            return f"box {box}: voxel indices must be integers"
        if not 0 <= start < stop <= size:
            return f"box {box}: axis {axis} needs 0 <= start < stop <= {size} (image shape {tuple(shape)})"
    return None


class KidneyLocalizer(ABC):
    """Finds the kidneys of whole CTs. Subclasses implement :meth:`find`.

    Args:
        kidney_margin_mm: grow every kidney box by this much (clipped to the image), for localisers whose
            boxes may fall short of the kidney.
    """

    name = "localizer"

    def __init__(self, kidney_margin_mm: float = 0.0):
        if kidney_margin_mm < 0:
            raise ValueError(f"kidney_margin_mm must be >= 0, got {kidney_margin_mm}")
        self.kidney_margin_mm = kidney_margin_mm

    @abstractmethod
    def find(self, ct: CtCase) -> Tuple[List[LocatedKidney], List[str]]:
        """The kidneys of `ct` (right before left) and notes for the report."""

    def settings(self) -> dict:
        """What identifies this localiser and its settings, for reports."""
        return {}

    def describe(self) -> dict:
        return {"kind": self.name, "kidney_margin_mm": self.kidney_margin_mm, **self.settings()}

    def close(self) -> None:
        """Release what the localiser keeps between CTs (worker processes); it starts them again when used again."""

    def locate(self, ct: CtCase) -> Localization:
        """Find the kidneys of one CT, timed; "no kidney found" is a note, not an error.

        A CT the localiser cannot work with (e.g. not in Hounsfield units) raises ValueError naming the CT.
        """
        start = time.perf_counter()
        try:
            kidneys, notes = self.find(ct)
        except ValueError as error:
            raise ValueError(f"{ct.case_id} ({ct.path}): {error}") from error
        if self.kidney_margin_mm and kidneys:
            spacing, shape = ct.image.GetSpacing()[::-1], ct.image.GetSize()[::-1]
            kidneys = [replace(k, box=grow_box(k.box, self.kidney_margin_mm, spacing, shape)) for k in kidneys]
        if not kidneys:
            notes = notes + ["no kidney found"]
        return Localization(ct.case_id, kidneys, time.perf_counter() - start, notes)


@dataclass
class CtFolder:
    """The whole CTs of an input folder, and the DICOM series in it that are not CT volumes."""

    cases: List[CtCase]
    skipped: List[SkippedSeries] = field(default_factory=list)

    def describe(self) -> dict:
        """For reports: each DICOM case id's study and series UIDs, and the series skipped (empty without DICOM)."""
        dicom = {case.case_id: case.dicom.describe() for case in self.cases if case.dicom is not None}
        return {"dicom_series": dicom, "skipped_series": [series.describe() for series in self.skipped]} \
            if dicom or self.skipped else {}


def read_ct_folder(folder: Path) -> CtFolder:
    """The CTs of `folder`: files in nnU-Net's naming (:func:`ct_cases`) or else every DICOM series under it that
    is a CT volume (:mod:`.dicom_cts`; case ids from the series UIDs)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"CT folder {folder} does not exist")
    try:
        return CtFolder(ct_cases(folder))
    except FileNotFoundError:
        series, skipped = find_ct_series(folder)
        if not series:
            reasons = "; ".join(f"{s.folder}: {s.reason}" for s in skipped[:5])
            raise FileNotFoundError(f"no CT named CASE_0000.nii.gz (nnU-Net's naming) and no DICOM CT series in "
                                    f"{folder}" + (f" (skipped: {reasons})" if skipped else "")) from None
        return CtFolder([CtCase(s.case_id, Path(s.files[0]).parent, s) for s in series], skipped)


def ct_cases(folder: Path) -> List[CtCase]:
    """The CTs of a folder in nnU-Net's naming, ``CASE_0000.<ending>`` (one channel), sorted by case id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"CT folder {folder} does not exist")
    cases, other_channels = {}, []
    for path in sorted(folder.iterdir()):
        ending = file_ending(path)
        stem = path.name[: -len(ending)] if ending else ""
        if not ending or "_" not in stem:
            continue
        case_id, channel = stem.rsplit("_", 1)
        if channel == "0000":
            cases[case_id] = CtCase(case_id, path)
        elif channel.isdigit():
            other_channels.append(path.name)
    if other_channels:
        raise ValueError(f"{folder}: whole-CT localisation takes one CT channel per case (CASE_0000), "
                         f"found {other_channels[:3]}")
    if not cases:
        raise FileNotFoundError(f"no CT named CASE_0000.nii.gz (nnU-Net's naming) in {folder}")
    return list(cases.values())
