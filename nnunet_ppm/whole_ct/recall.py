"""How well ROI boxes hold a CT's reference kidneys: found or not, and the share of kidney + tumor voxels inside.

The reference kidneys are told apart and sided exactly as ROI conversion does
(:func:`~nnunet_ppm.dataset_conversion.roi.kidney_sides`); a kidney is found
when there is an ROI box of its side, and its share counts every voxel of that
kidney (kidney, tumor and cyst labels) inside that box.
"""
from dataclasses import dataclass
from typing import List, Mapping

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

    @property
    def fraction(self) -> float:
        return self.inside / self.voxels if self.voxels else 1.0


def roi_recall(case: str, reference: sitk.Image, boxes: Mapping[str, Box]) -> List[KidneyRecall]:
    """Recall of every kidney of `reference` (a label map in the CT's geometry) by the ROI `boxes` ({side: box})."""
    kidneys_map, sides = kidney_sides(reference)
    recalls = []
    for index, side in enumerate(sides):
        kidney = kidneys_map == index + 1
        inside = 0
        if side in boxes:
            image_slices, _ = box_overlap(boxes[side], kidney.shape)
            inside = int(np.count_nonzero(kidney[image_slices]))
        recalls.append(KidneyRecall(case, side, side in boxes, int(np.count_nonzero(kidney)), inside))
    return recalls
