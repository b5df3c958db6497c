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
- Surface Dice: KiTS21/23's score, with KiTS' tolerance of the structure; surface elements on voxel
  corners weighted by area, not the surface voxels above (see :mod:`nnunet_ppm.evaluation.surface_dice`).

NaN-free rules for empty masks:

- both empty: Dice 1, MSSD 0, HD95 0 (perfect agreement on "nothing there");
- one empty: Dice 0, MSSD and HD95 = the image diagonal (the largest distance
  two voxel centres of this image can have), in voxels and in mm. It keeps the
  penalty finite, comparable within a case and large.
- Surface Dice follows KiTS: 1 when both are empty, 0 when exactly one is.

Tumor detection per case (one case = one ROI/kidney in the paper's layout):
TP = reference has tumor and the predicted tumor overlaps it; FN = reference has
tumor and no predicted tumor voxel overlaps it; FP = reference has no tumor and
the prediction has some; TN = neither has any.

Distances are exact Euclidean nearest-neighbour distances between the surface
voxels of the two masks (scipy.spatial.cKDTree). On whole CTs this is several
times faster than a distance transform over the masks' bounding box, and gives
the same numbers.
"""
from dataclasses import asdict, dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from nnunet_ppm.evaluation.surface_dice import surface_elements, tolerance_mm

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
    surface_dice: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


METRIC_NAMES = tuple(StructureMetrics.__dataclass_fields__)


def mask_of(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Boolean mask of the voxels whose label is one of ``values`` (faster than np.isin for a few values)."""
    mask = np.zeros(labels.shape, dtype=bool)
    for value in values:
        mask |= labels == value
    return mask


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    total = int(reference.sum()) + int(prediction.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(reference, prediction).sum()) / total


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (image border counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, structure=FACE_CONNECTIVITY, border_value=0)


def directed_surface_distances(from_points: np.ndarray, to_points: np.ndarray) -> np.ndarray:
    """Distance from each of ``from_points`` (N x 3) to the nearest of ``to_points`` (M x 3, M > 0)."""
    return cKDTree(to_points).query(from_points)[0]


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
    reference_points = np.argwhere(surface(reference[box])).astype(float)
    prediction_points = np.argwhere(surface(prediction[box])).astype(float)
    n_surface_voxels = len(reference_points) + len(prediction_points)

    def both_directions(sampling: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        scaled_reference, scaled_prediction = reference_points * sampling, prediction_points * sampling
        return (directed_surface_distances(scaled_reference, scaled_prediction),
                directed_surface_distances(scaled_prediction, scaled_reference))

    ref_to_pred_vox, pred_to_ref_vox = both_directions(np.ones(reference.ndim))
    ref_to_pred_mm, pred_to_ref_mm = both_directions(np.asarray(spacing, dtype=float))
    mssd_voxels = (ref_to_pred_vox.sum() + pred_to_ref_vox.sum()) / n_surface_voxels
    mssd_mm = (ref_to_pred_mm.sum() + pred_to_ref_mm.sum()) / n_surface_voxels
    hd95_mm = max(np.percentile(ref_to_pred_mm, 95), np.percentile(pred_to_ref_mm, 95))
    return float(mssd_voxels), float(mssd_mm), float(hd95_mm)


def surface_dice(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                 tolerance: float) -> float:
    """KiTS21/23 Surface Dice of two boolean masks at ``tolerance`` mm (1 when both are empty, 0 when one is).

    The masks may be a crop of the image as long as the crop holds both masks whole.
    """
    has_reference, has_prediction = bool(reference.any()), bool(prediction.any())
    if not has_reference or not has_prediction:
        return float(has_reference == has_prediction)
    box = bounding_box(reference | prediction)
    reference_points, reference_areas = surface_elements(reference[box], spacing)
    prediction_points, prediction_areas = surface_elements(prediction[box], spacing)
    reference_near = directed_surface_distances(reference_points, prediction_points) <= tolerance
    prediction_near = directed_surface_distances(prediction_points, reference_points) <= tolerance
    near_area = reference_areas[reference_near].sum() + prediction_areas[prediction_near].sum()
    return float(near_area / (reference_areas.sum() + prediction_areas.sum()))


def structure_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                      surface_dice_tolerance: float, image_shape: Optional[Sequence[int]] = None
                      ) -> StructureMetrics:
    """All metrics of one structure, given as two boolean masks of equal shape and their voxel spacing (mm).

    ``surface_dice_tolerance``: in mm (KiTS' value of the structure: :func:`surface_dice.tolerance_mm`).
    ``image_shape``: shape of the whole image when the masks are a crop of it (see :func:`surface_distances`).
    """
    voxel_ml = float(np.prod(spacing)) / 1000.0
    volume_reference = int(reference.sum()) * voxel_ml
    volume_prediction = int(prediction.sum()) * voxel_ml
    mssd_voxels, mssd_mm, hd95_mm = surface_distances(reference, prediction, spacing, image_shape)
    return StructureMetrics(dice=dice(reference, prediction), mssd_voxels=mssd_voxels, mssd_mm=mssd_mm,
                            hd95_mm=hd95_mm, volume_reference_ml=volume_reference,
                            volume_prediction_ml=volume_prediction,
                            volume_difference_ml=volume_prediction - volume_reference,
                            surface_dice=surface_dice(reference, prediction, spacing, surface_dice_tolerance))


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
        structures: structure name -> voxel values that make it up (names of
            :mod:`nnunet_ppm.evaluation.labels`; each one's KiTS Surface Dice tolerance is used).
        tumor_values: the voxel values that count as tumor for detection.
    """
    foreground = (reference != 0) | (prediction != 0)
    # outside this box both are background, so metrics on the box equal those on the whole image
    box = bounding_box(foreground, margin=1) if foreground.any() else tuple(slice(None) for _ in reference.shape)
    reference_box, prediction_box = reference[box], prediction[box]
    results = {name: structure_metrics(mask_of(reference_box, values), mask_of(prediction_box, values), spacing,
                                       tolerance_mm(name), image_shape=reference.shape)
               for name, values in structures.items()}
    detection = tumor_detection(mask_of(reference_box, tumor_values), mask_of(prediction_box, tumor_values))
    return results, detection
