"""Overlap, surface-distance, volume and detection metrics of one case.

Definitions (reference R, prediction P, both binary masks of one structure):

- Dice = 2 |R & P| / (|R| + |P|) (paper Eq. 2).
- Surface of a mask: its voxels with at least one face neighbour (6-connectivity)
  outside the mask; voxels on the image border count as surface.
- Mean surface-to-surface distance (MSSD, the paper's Table I): the mean over the
  surface voxels of both masks of the distance to the other mask's surface
  (the symmetric "average surface distance"). Reported in voxels (index space,
  as the paper's "pixels") and in mm (using the voxel spacing).
- HD95 (mm): the larger of the two directed 95th percentiles (numpy's linear
  interpolation) of those distances.
- Volumes in ml (voxel count x voxel volume); volume difference = prediction - reference.

NaN-free rules for empty masks:

- both empty: Dice 1, MSSD 0, HD95 0 (perfect agreement on "nothing there");
- one empty: Dice 0, MSSD and HD95 = the image diagonal (the largest distance
  two voxel centres of this image can have), in voxels and in mm. It keeps the
  penalty finite, comparable within a case and large.

Tumor detection per case (one case = one ROI/kidney in the paper's layout):
TP = reference has tumor and the predicted tumor overlaps it; FN = reference has
tumor and no predicted tumor voxel overlaps it; FP = reference has no tumor and
the prediction has some; TN = neither has any.

Distances use scipy's exact Euclidean distance transform on the bounding box of
both masks (plus one voxel), which gives the same result as on the whole image.
"""
from dataclasses import asdict, dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

DETECTION_OUTCOMES = ("TP", "FP", "FN", "TN")
FACE_CONNECTIVITY = ndimage.generate_binary_structure(3, 1)


@dataclass(frozen=True)
class StructureMetrics:
    """Metrics of one structure in one case (see the module docstring for the definitions)."""

    dice: float
    mssd_voxels: float
    mssd_mm: float
    hd95_mm: float
    volume_reference_ml: float
    volume_prediction_ml: float
    volume_difference_ml: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


METRIC_NAMES = tuple(StructureMetrics.__dataclass_fields__)


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    total = int(reference.sum()) + int(prediction.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(reference, prediction).sum()) / total


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (image border counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, structure=FACE_CONNECTIVITY, border_value=0)


def directed_surface_distances(from_surface: np.ndarray, to_surface: np.ndarray,
                               sampling: Sequence[float]) -> np.ndarray:
    """Distance from each voxel of ``from_surface`` to the nearest voxel of ``to_surface`` (non-empty)."""
    return ndimage.distance_transform_edt(~to_surface, sampling=sampling)[from_surface]


def image_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Largest distance between two voxel centres of an image of this shape and spacing."""
    return float(np.sqrt(sum(((n - 1) * s) ** 2 for n, s in zip(shape, spacing))))


def bounding_box(mask: np.ndarray, margin: int = 0) -> Tuple[slice, ...]:
    """Slices of the smallest box holding every True voxel of ``mask`` (non-empty), widened by ``margin``."""
    box = []
    for axis in range(mask.ndim):
        other_axes = tuple(a for a in range(mask.ndim) if a != axis)
        indices = np.flatnonzero(mask.any(axis=other_axes))
        box.append(slice(max(indices[0] - margin, 0), min(indices[-1] + 1 + margin, mask.shape[axis])))
    return tuple(box)


def surface_distances(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                      image_shape: Optional[Sequence[int]] = None) -> Tuple[float, float, float]:
    """(MSSD in voxels, MSSD in mm, HD95 in mm) of two boolean masks, with the empty-mask rules above.

    ``image_shape`` is the shape of the whole image when the masks are a crop of it (for the
    empty-mask penalty); it defaults to the masks' shape.
    """
    has_reference, has_prediction = bool(reference.any()), bool(prediction.any())
    if not has_reference and not has_prediction:
        return 0.0, 0.0, 0.0
    if not has_reference or not has_prediction:
        shape = reference.shape if image_shape is None else image_shape
        diagonal_mm = image_diagonal(shape, spacing)
        return image_diagonal(shape, [1.0] * len(shape)), diagonal_mm, diagonal_mm
    box = bounding_box(reference | prediction, margin=1)
    reference_surface, prediction_surface = surface(reference[box]), surface(prediction[box])
    n_surface_voxels = reference_surface.sum() + prediction_surface.sum()

    def both_directions(sampling: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        return (directed_surface_distances(reference_surface, prediction_surface, sampling),
                directed_surface_distances(prediction_surface, reference_surface, sampling))

    ref_to_pred_vox, pred_to_ref_vox = both_directions([1.0] * reference.ndim)
    ref_to_pred_mm, pred_to_ref_mm = both_directions(spacing)
    mssd_voxels = (ref_to_pred_vox.sum() + pred_to_ref_vox.sum()) / n_surface_voxels
    mssd_mm = (ref_to_pred_mm.sum() + pred_to_ref_mm.sum()) / n_surface_voxels
    hd95_mm = max(np.percentile(ref_to_pred_mm, 95), np.percentile(pred_to_ref_mm, 95))
    return float(mssd_voxels), float(mssd_mm), float(hd95_mm)


def structure_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                      image_shape: Optional[Sequence[int]] = None) -> StructureMetrics:
    """All metrics of one structure, given as two boolean masks of equal shape and their voxel spacing (mm).

    ``image_shape``: shape of the whole image when the masks are a crop of it (see :func:`surface_distances`).
    """
    voxel_ml = float(np.prod(spacing)) / 1000.0
    volume_reference = int(reference.sum()) * voxel_ml
    volume_prediction = int(prediction.sum()) * voxel_ml
    mssd_voxels, mssd_mm, hd95_mm = surface_distances(reference, prediction, spacing, image_shape)
    return StructureMetrics(dice=dice(reference, prediction), mssd_voxels=mssd_voxels, mssd_mm=mssd_mm,
                            hd95_mm=hd95_mm, volume_reference_ml=volume_reference,
                            volume_prediction_ml=volume_prediction,
                            volume_difference_ml=volume_prediction - volume_reference)


def tumor_detection(reference_tumor: np.ndarray, prediction_tumor: np.ndarray) -> str:
    """'TP', 'FP', 'FN' or 'TN' for one case (rules in the module docstring)."""
    if reference_tumor.any():
        return "TP" if np.logical_and(reference_tumor, prediction_tumor).any() else "FN"
    return "FP" if prediction_tumor.any() else "TN"


def case_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                 structures: Mapping[str, Sequence[int]], tumor_values: Sequence[int]
                 ) -> Tuple[Dict[str, StructureMetrics], str]:
    """Metrics of every structure of one case, and its tumor detection outcome.

    Args:
        reference, prediction: label maps of equal shape.
        spacing: voxel spacing in mm, in the arrays' axis order.
        structures: structure name -> voxel values that make it up.
        tumor_values: the voxel values that count as tumor for detection.
    """
    foreground = (reference != 0) | (prediction != 0)
    # outside this box both are background, so metrics on the box equal those on the whole image
    box = bounding_box(foreground, margin=1) if foreground.any() else tuple(slice(None) for _ in reference.shape)
    reference_box, prediction_box = reference[box], prediction[box]
    results = {name: structure_metrics(np.isin(reference_box, values), np.isin(prediction_box, values), spacing,
                                       image_shape=reference.shape)
               for name, values in structures.items()}
    detection = tumor_detection(np.isin(reference_box, tumor_values), np.isin(prediction_box, tumor_values))
    return results, detection
