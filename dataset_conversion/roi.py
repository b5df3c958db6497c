"""Per-kidney regions of interest (paper section II): find the kidneys, box each one, crop to a box.

**Box convention** (roi_manifest.json and everything that pastes ROI results back):
a box is ``((z0, z1), (y0, y1), (x0, x1))`` in the source image's voxel indices in
SimpleITK array order, half-open (start included, stop excluded) and *before*
clipping to the image: the parts of a box outside the image are padding
(CT_PAD_VALUE in the CT, LABEL_PAD_VALUE in label maps). "z" is simply array
axis 0; the axis that runs along the patient is found from the direction matrix
(:func:`~nnunet_ppm.dataset_conversion.orientation.slice_axis`), because KiTS
files keep the slice axis last in array order.

Two independent steps, so whole-CT prediction can crop exactly like training:

1. :func:`kidney_rois` -- boxes from a kidney+tumor label map: connected
   components of all non-background voxels tell the kidneys apart, the physical
   x coordinate tells left from right. The in-plane window (default 150x150
   voxels, as in the paper) is centred on the kidney, the box spans every slice
   holding it plus a margin, and grows where the kidney is larger than the window.
2. :func:`crop_image` / :func:`crop_array` -- cut any image to a box, padding
   outside the image.
"""
import math
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cc3d
import numpy as np
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.labels import KIDNEY, TUMOR
from nnunet_ppm.dataset_conversion.orientation import anatomical_axes, slice_axis
from nnunet_ppm.postprocessing.largest_component import body_midline, left_right_axis

Box = Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]

CT_PAD_VALUE = -1024
LABEL_PAD_VALUE = 0
# a component with kidney voxels counts as a kidney when it holds at least this fraction of the largest one's voxels
MIN_KIDNEY_FRACTION = 0.1


@dataclass(frozen=True)
class Length:
    """A length in voxels or in millimetres."""

    value: float
    unit: str  # "voxels" or "mm"

    def voxels(self, spacing: float, round_up: bool = False) -> int:
        """This length in voxels of size `spacing` mm (at least 1 voxel for a nonzero length)."""
        count = self.value if self.unit == "voxels" else self.value / spacing
        whole = math.ceil(count - 1e-9) if round_up else round(count)
        return max(whole, 1 if self.value > 0 else 0)

    def __str__(self) -> str:
        return f"{self.value:g}{'mm' if self.unit == 'mm' else ''}"


@dataclass(frozen=True)
class RoiWindow:
    """ROI size: the in-plane window (anterior-posterior, left-right) and the margin above and below the kidney."""

    in_plane: Tuple[Length, Length] = (Length(150, "voxels"), Length(150, "voxels"))
    margin: Length = Length(10, "mm")

    def describe(self) -> dict:
        """{"in_plane": "150x150" or "110x100mm", "margin": "10mm"}: what dataset.json records; see from_description."""
        first, second = self.in_plane
        unit = "mm" if first.unit == "mm" else ""
        return {"in_plane": f"{first.value:g}x{second.value:g}{unit}", "margin": str(self.margin)}

    @classmethod
    def from_description(cls, description: dict) -> "RoiWindow":
        """The window that :meth:`describe` described (e.g. read back from a ROI dataset's dataset.json)."""
        return cls(parse_in_plane_size(description["in_plane"]), parse_length(description["margin"]))


def parse_length(text: str) -> Length:
    """'12' -> 12 voxels, '12mm' or '12.5 mm' -> millimetres."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(mm)?\s*", str(text))
    if not match:
        raise ValueError(f"cannot read length {text!r}: expected a number of voxels (e.g. 10) or millimetres (e.g. 10mm)")
    return Length(float(match.group(1)), "mm" if match.group(2) else "voxels")


def parse_in_plane_size(text: str) -> Tuple[Length, Length]:
    """'150' or '150x120' (voxels), '110mm' or '110x100mm': (anterior-posterior, left-right) window size."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(?:[xX*]\s*(\d+(?:\.\d*)?))?\s*(mm)?\s*", str(text))
    if not match or float(match.group(1)) <= 0 or float(match.group(2) or 1) <= 0:
        raise ValueError(f"cannot read ROI size {text!r}: expected e.g. 150, 150x120, 110mm or 110x100mm")
    unit = "mm" if match.group(3) else "voxels"
    return Length(float(match.group(1)), unit), Length(float(match.group(2) or match.group(1)), unit)


def kidney_map(label: np.ndarray, spacing: Sequence[float]) -> Tuple[np.ndarray, int]:
    """Split all non-background voxels into kidneys.

    Returns (map, count): map holds 0 for background and 1..count (count <= 2)
    for the kidney each voxel belongs to. Connected components (26-connected)
    that hold kidney voxels and at least MIN_KIDNEY_FRACTION of the largest such
    component's voxels (kidney, tumor and cyst together, so a kidney mostly
    replaced by tumor still counts) are kidneys, the two largest at most; every
    other component (a detached tumor or cyst, a label speck) joins the kidney
    with the nearest centroid, measured in mm with `spacing` (array order).
    """
    components = cc3d.connected_components(label > 0, connectivity=26)
    num_components = int(components.max())
    if num_components == 0:
        return np.zeros(label.shape, np.uint8), 0
    statistics = cc3d.statistics(components)
    sizes = np.asarray(statistics["voxel_counts"], dtype=np.int64)[1:]
    with_kidney = np.bincount(components[label == KIDNEY].ravel(), minlength=num_components + 1)[1:] > 0
    candidates = np.where(with_kidney, sizes, 0) if with_kidney.any() else sizes
    order = np.argsort(-candidates, kind="stable")
    kidneys = [int(c) for c in order[:2] if candidates[c] > 0 and candidates[c] >= MIN_KIDNEY_FRACTION * candidates[order[0]]]
    centroids = np.asarray(statistics["centroids"])[1:] * np.asarray(spacing, dtype=float)
    lookup = np.zeros(num_components + 1, np.uint8)
    for component in range(num_components):
        distances = [np.linalg.norm(centroids[component] - centroids[k]) for k in kidneys]
        lookup[component + 1] = int(np.argmin(distances)) + 1
    return lookup[components], len(kidneys)


def sides_from_x(kidney_x: Sequence[float], reference_x: float) -> List[str]:
    """'left' or 'right' for each kidney from its physical LPS x (x grows towards the patient's left).

    Two kidneys: the one further to the patient's left is 'left'. One kidney:
    compared with `reference_x` (the patient's midline, :func:`midline_x`, or the image centre).
    """
    if len(kidney_x) == 2:
        return ["left", "right"] if kidney_x[0] > kidney_x[1] else ["right", "left"]
    return ["left" if x > reference_x else "right" for x in kidney_x]


@dataclass(frozen=True)
class Kidney:
    """One kidney of a label map: its side, whether it holds tumor, and the tight box of its voxels."""

    side: str
    has_tumor: bool
    bounds: Box


def midline_x(ct: sitk.Image) -> float:
    """Physical (LPS) x of the patient's midline: the centre of the body in the CT (HU), found by
    :func:`~nnunet_ppm.postprocessing.largest_component.body_midline` (the image's middle where no body shows)."""
    array = sitk.GetArrayViewFromImage(ct)
    lr_axis = left_right_axis(ct.GetDirection())
    index = [(size - 1) / 2 for size in array.shape]
    index[lr_axis] = body_midline(array, lr_axis)
    return ct.TransformContinuousIndexToPhysicalPoint(index[::-1])[0]


def kidney_sides(label_image: sitk.Image, ct: Optional[sitk.Image] = None) -> Tuple[np.ndarray, List[str]]:
    """:func:`kidney_map` of a label map with each kidney's side: (map, sides), sides[i] for kidney i + 1.

    A single kidney (nephrectomy, or a scan that holds one) is sided against the patient's midline in `ct` (the
    label map's CT), so a patient off the image's centre keeps the right side; without a CT, against the
    image's centre. Used by :func:`find_kidneys` and by the atlases of whole-CT localisation, so both tell the
    kidneys and their sides apart the same way.
    """
    kidneys_map, count = kidney_map(sitk.GetArrayViewFromImage(label_image), label_image.GetSpacing()[::-1])
    if count == 0:
        return kidneys_map, []
    centroids = cc3d.statistics(kidneys_map)["centroids"][1:]
    physical_x = [label_image.TransformContinuousIndexToPhysicalPoint(tuple(float(c) for c in centroid[::-1]))[0]
                  for centroid in centroids]
    if count == 2:  # sided by each other: no reference needed
        return kidneys_map, sides_from_x(physical_x, math.nan)
    centre = tuple((s - 1) / 2 for s in label_image.GetSize())
    reference_x = midline_x(ct) if ct is not None else label_image.TransformContinuousIndexToPhysicalPoint(centre)[0]
    return kidneys_map, sides_from_x(physical_x, reference_x)


def find_kidneys(label_image: sitk.Image, ct: Optional[sitk.Image] = None) -> List[Kidney]:
    """The kidneys of a label map (0 background, 1 kidney, 2 tumor, 3 cyst), right before left; a single kidney
    sided against the patient's midline in `ct` (:func:`kidney_sides`)."""
    label = sitk.GetArrayViewFromImage(label_image)
    kidneys_map, sides = kidney_sides(label_image, ct)
    if not sides:
        return []
    bounding_boxes = cc3d.statistics(kidneys_map)["bounding_boxes"][1:]
    kidneys = []
    for index, bounding_slices in enumerate(bounding_boxes):
        in_kidney = kidneys_map[bounding_slices] == index + 1
        has_tumor = bool(np.any(label[bounding_slices][in_kidney] == TUMOR))
        bounds = tuple((int(s.start), int(s.stop)) for s in bounding_slices)
        kidneys.append(Kidney(sides[index], has_tumor, bounds))
    return sorted(kidneys, key=lambda kidney: kidney.side != "right")


@dataclass(frozen=True)
class KidneyRoi:
    """A box around one kidney; `enlarged` when the kidney did not fit the requested in-plane window."""

    side: str
    has_tumor: bool
    box: Box
    enlarged: bool


def roi_box(bounds: Box, spacing: Sequence[float], direction: Sequence[float], window: RoiWindow) -> Tuple[Box, bool]:
    """The ROI box around the tight kidney box `bounds` (array order, like `spacing`); True if the window grew."""
    along = slice_axis(direction)
    box, enlarged = [], False
    for axis, ((lo, hi), (canonical, _)) in enumerate(zip(bounds, anatomical_axes(direction))):
        if axis == along:
            margin = window.margin.voxels(spacing[axis], round_up=True)
            box.append((lo - margin, hi + margin))
            continue
        size = window.in_plane[canonical - 1].voxels(spacing[axis])
        if hi - lo > size:
            size, enlarged = hi - lo, True
        start = (lo + hi - size) // 2
        box.append((start, start + size))
    return tuple(box), enlarged


def kidney_rois(label_image: sitk.Image, window: RoiWindow = RoiWindow(), keep_healthy: bool = False,
                ct: Optional[sitk.Image] = None) -> List[KidneyRoi]:
    """One box per kidney of `label_image` (only kidneys with tumor unless `keep_healthy`), right before left; a
    single kidney sided against the patient's midline in `ct` (:func:`kidney_sides`)."""
    spacing = label_image.GetSpacing()[::-1]
    rois = []
    for kidney in find_kidneys(label_image, ct):
        if kidney.has_tumor or keep_healthy:
            box, enlarged = roi_box(kidney.bounds, spacing, label_image.GetDirection(), window)
            rois.append(KidneyRoi(kidney.side, kidney.has_tumor, box, enlarged))
    return rois


def box_overlap(box: Box, shape: Sequence[int]) -> Tuple[Tuple[slice, ...], Tuple[slice, ...]]:
    """(slices into the image, slices into the box-sized array) of the part of `box` that lies inside the image."""
    image_slices, box_slices = [], []
    for (start, stop), size in zip(box, shape):
        lo, hi = max(start, 0), min(stop, size)
        hi = max(hi, lo)
        image_slices.append(slice(lo, hi))
        box_slices.append(slice(lo - start, hi - start))
    return tuple(image_slices), tuple(box_slices)


def crop_array(array: np.ndarray, box: Box, pad_value: float) -> np.ndarray:
    """`array[box]` (first three axes), with `pad_value` where the box leaves the array."""
    out = np.full(tuple(stop - start for start, stop in box) + array.shape[3:], pad_value, dtype=array.dtype)
    image_slices, box_slices = box_overlap(box, array.shape[:3])
    out[box_slices] = array[image_slices]
    return out


def crop_image(image: sitk.Image, box: Box, pad_value: float) -> sitk.Image:
    """Crop a SimpleITK image to `box`; the result keeps spacing and direction and sits at the same place in space."""
    cropped = sitk.GetImageFromArray(crop_array(sitk.GetArrayViewFromImage(image), box, pad_value),
                                     isVector=image.GetNumberOfComponentsPerPixel() > 1)
    cropped.SetSpacing(image.GetSpacing())
    cropped.SetDirection(image.GetDirection())
    cropped.SetOrigin(image.TransformIndexToPhysicalPoint([int(start) for start, _ in box[::-1]]))
    return cropped
