"""How well ROI boxes hold a CT's reference kidneys: found or not, the share of kidney + tumor voxels inside, and
how tight the box is.

The reference kidneys are told apart and sided exactly as ROI conversion does
(:func:`~nnunet_ppm.dataset_conversion.roi.kidney_sides`); a kidney is found
when there is an ROI box of its side, and its share counts every voxel of that
kidney (kidney, tumor and cyst labels) inside that box. Tightness is the ROI
box's volume inside the image over the volume of the kidney's own bounding box
(kidney + tumor + cyst): what the box costs beyond what it must hold.
"""
from dataclasses import dataclass
from typing import List, Mapping, Optional

import numpy as np
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.roi import Box, box_overlap, kidney_sides


@dataclass(frozen=True)
class KidneyRecall:
    """One reference kidney: found (an ROI of its side exists) and how many of its voxels its ROI holds."""

    case: str
    side: str
    found: bool
    voxels: int
    inside: int
    box_voxels: int = 0  # the ROI box's voxels inside the image (0: not found)
    kidney_box_voxels: int = 0  # voxels of the kidney's own bounding box

    @property
    def fraction(self) -> float:
        return self.inside / self.voxels if self.voxels else 1.0

    @property
    def box_over_kidney_box(self) -> float:
        """ROI box volume over the kidney's bounding-box volume (nan when not found)."""
        return self.box_voxels / self.kidney_box_voxels if self.found and self.kidney_box_voxels else float("nan")


def roi_recall(case: str, reference: sitk.Image, boxes: Mapping[str, Box],
               ct: Optional[sitk.Image] = None) -> List[KidneyRecall]:
    """Recall of every kidney of `reference` (a label map in the CT's geometry) by the ROI `boxes` ({side: box});
    a single kidney is sided against the patient's midline in `ct` where it is given."""
    kidneys_map, sides = kidney_sides(reference, ct)
    recalls = []
    for index, side in enumerate(sides):
        kidney = kidneys_map == index + 1
        inside = box_voxels = 0
        if side in boxes:
            image_slices, _ = box_overlap(boxes[side], kidney.shape)
            inside = int(np.count_nonzero(kidney[image_slices]))
            box_voxels = int(np.prod([s.stop - s.start for s in image_slices]))
        occupied = np.argwhere(kidney)
        kidney_box_voxels = int(np.prod(occupied.max(axis=0) - occupied.min(axis=0) + 1))
        recalls.append(KidneyRecall(case, side, side in boxes, int(np.count_nonzero(kidney)), inside, box_voxels,
                                    kidney_box_voxels))
    return recalls
