"""ROIs of a whole CT: from located kidneys to ROI boxes and crops, and ROI predictions pasted back.

Boxes and crops come from :mod:`nnunet_ppm.dataset_conversion.roi`, the code
that ``nnunet_ppm convert --roi`` crops training ROIs with: the same window
around the kidney's box (:func:`~nnunet_ppm.dataset_conversion.roi.roi_box`),
the same padding outside the image (-1024 HU), the same box convention and
the same ROI case names (``<case>_<side>``).

**Pasting back** (:func:`paste_rois`): the label map starts as background.
A voxel inside one ROI only takes that ROI's predicted label. Where the two
kidneys' ROIs overlap, foreground beats background, and where both ROIs
predict foreground the ROI whose kidney box centre is nearer (in mm) wins
(a tie goes to the right kidney's ROI). Parts of a box outside the image
(padding) are dropped. Outside every box the map stays background.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.image_files import write_image
from nnunet_ppm.dataset_conversion.orientation import orientation_code
from nnunet_ppm.dataset_conversion.roi import CT_PAD_VALUE, Box, RoiWindow, box_overlap, crop_image, roi_box
from nnunet_ppm.localization.localizer import Localization

NO_OWNER = -1


@dataclass(frozen=True)
class CtRoi:
    """One kidney's ROI in a whole CT: the ROI box (roi_manifest convention) around the located kidney box."""

    case: str
    side: str
    box: Box
    kidney_box: Box
    enlarged: bool
    confidence: Optional[float]

    @property
    def roi_case(self) -> str:
        """The ROI's case name, as ``convert --roi`` names ROI cases."""
        return f"{self.case}_{self.side}"

    def to_json(self) -> dict:
        return {"side": self.side, "box": [list(axis) for axis in self.box],
                "kidney_box": [list(axis) for axis in self.kidney_box], "enlarged": self.enlarged,
                "confidence": None if self.confidence is None else round(self.confidence, 4),
                "roi_case": self.roi_case}


def rois_for(localization: Localization, ct: sitk.Image, window: RoiWindow) -> List[CtRoi]:
    """The ROI of every located kidney (right before left), with the training ROIs' window."""
    spacing, direction = ct.GetSpacing()[::-1], ct.GetDirection()
    rois = []
    for kidney in localization.kidneys:
        box, enlarged = roi_box(kidney.box, spacing, direction, window)
        rois.append(CtRoi(localization.case, kidney.side, box, kidney.box, enlarged, kidney.confidence))
    return rois


def reoriented(image: sitk.Image, code: Optional[str]) -> sitk.Image:
    """`image` with its axes permuted and flipped (no resampling) to orientation `code` ("LPS", "IPL", ...);
    unchanged when `code` is None or already its orientation."""
    if code is None or orientation_code(image.GetDirection()) == code:
        return image
    return sitk.DICOMOrient(image, code)


def write_roi_images(ct: sitk.Image, rois: Sequence[CtRoi], folder: Path, file_ending: str = ".nii.gz",
                     orientation: Optional[str] = None) -> None:
    """Crop the CT to each ROI (padding -1024 HU) as ``folder/<roi_case>_0000<ending>``, nnU-Net's naming, in
    `orientation` (the model's training ROIs'; None: the CT's). nnU-Net never reorients: a model sees its
    arrays as stored."""
    for roi in rois:
        crop = reoriented(crop_image(ct, roi.box, CT_PAD_VALUE), orientation)
        write_image(crop, folder / f"{roi.roi_case}_0000{file_ending}")


def check_roi_prediction(prediction: sitk.Image, roi: CtRoi, ct: sitk.Image) -> None:
    """Raise ValueError unless `prediction` lies exactly on `roi`'s box of `ct`."""
    expected_size = tuple(stop - start for start, stop in roi.box[::-1])
    expected_origin = ct.TransformIndexToPhysicalPoint([int(start) for start, _ in roi.box[::-1]])
    tolerance = 1e-3 * min(ct.GetSpacing())
    if (prediction.GetSize() != expected_size
            or not np.allclose(prediction.GetOrigin(), expected_origin, atol=tolerance)
            or not np.allclose(prediction.GetSpacing(), ct.GetSpacing(), rtol=1e-5)):
        raise ValueError(f"{roi.roi_case}: ROI prediction has size {prediction.GetSize()}, origin "
                         f"{prediction.GetOrigin()}; its box {roi.box} of the CT needs size {expected_size}, "
                         f"origin {tuple(expected_origin)}")


def _distance_to_centre(image_slices: Tuple[slice, ...], box: Box, spacing: Sequence[float]) -> np.ndarray:
    """Distance (mm) from each voxel of `image_slices` to the centre of `box` (both in array indices)."""
    squared = 0.0
    for axis, (part, (start, stop), step) in enumerate(zip(image_slices, box, spacing)):
        shape = [1, 1, 1]
        shape[axis] = part.stop - part.start
        offsets = (np.arange(part.start, part.stop, dtype=np.float32) - (start + stop - 1) / 2.0) * step
        squared = squared + (offsets ** 2).reshape(shape)
    return np.sqrt(squared)


def paste_rois(shape: Sequence[int], spacing: Sequence[float], rois: Sequence[CtRoi],
               predictions: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """The whole-CT label map (uint8) from ROI label arrays, and which ROI each voxel's label came from.

    Args:
        shape: the CT's array shape (z, y, x).
        spacing: its voxel size in mm, array order.
        rois: the ROIs, in priority order for ties (right before left).
        predictions: one label array per ROI, shaped like its box.

    Returns:
        (labels, owner): owner holds the index of the ROI whose label a voxel holds, NO_OWNER where
        no ROI predicted foreground. See the module docstring for the overlap rule.
    """
    labels = np.zeros(shape, np.uint8)
    owner = np.full(shape, NO_OWNER, np.int8)
    for index, (roi, prediction) in enumerate(zip(rois, predictions)):
        expected = tuple(stop - start for start, stop in roi.box)
        if prediction.shape != expected:
            raise ValueError(f"{roi.roi_case}: prediction of shape {prediction.shape}, its box needs {expected}")
        image_slices, box_slices = box_overlap(roi.box, shape)
        predicted = prediction[box_slices]
        current = owner[image_slices]
        takes = predicted > 0
        contested = takes & (current != NO_OWNER)
        if contested.any():
            mine = _distance_to_centre(image_slices, roi.kidney_box, spacing)
            for other in np.unique(current[contested]):
                theirs = _distance_to_centre(image_slices, rois[other].kidney_box, spacing)
                takes &= ~((current == other) & (theirs <= mine))
        labels[image_slices][takes] = predicted[takes]
        current[takes] = index
    return labels, owner


def volumes_ml(labels: np.ndarray, owner: np.ndarray, rois: Sequence[CtRoi], spacing: Sequence[float],
               label_names: dict) -> dict:
    """{side: {label name: ml}} of the pasted label map, each voxel counted for the ROI it came from."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    volumes = {}
    for index, roi in enumerate(rois):
        mine = labels[owner == index]
        volumes[roi.side] = {name: round(float(np.count_nonzero(mine == value)) * voxel_ml, 3)
                             for name, value in label_names.items() if value != 0}
    return volumes
