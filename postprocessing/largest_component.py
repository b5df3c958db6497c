"""Largest 18-connected component of kidney + tumor (paper, section II.B).

Kidney and tumor voxels (every non-background label, so a cyst label counts
as kidney too) are taken together as one foreground mask and labelled with
18-connectivity (neighbours sharing a face or an edge, not
those touching only at a corner). Voxels of every other component are set to
background; labels inside the kept component are left as they are.

Two rules:

* ``keep_largest_component`` - the paper's rule for a kidney ROI: keep the
  single largest component.
* ``keep_largest_component_per_side`` - for a full CT with two kidneys: the
  image is split at the patient's midline along the left-right axis, each
  component belongs to the side its centroid lies on, and the largest
  component of each side is kept. A single kidney (nephrectomy) keeps one
  component; a horseshoe kidney is one component and is kept whole. The
  left-right array axis comes from the image direction
  (:func:`left_right_axis`), the midline from the CT (:func:`body_midline`:
  the centre of the body, so a patient lying off the image's centre keeps
  both kidneys); without the CT (nnU-Net's ``postprocessing.pkl``) it is the
  image's middle.

Both functions take and return label arrays in nnU-Net's array order and
never modify their input, so they can be pickled into an nnU-Net
``postprocessing.pkl`` (see ``nnunet_pp_pkl``).
"""
from typing import Optional, Sequence, Tuple

import cc3d
import numpy as np

from nnunet_ppm.evaluation.metrics import bounding_box

CONNECTIVITY = 18
BODY_HU = -300.0  # above: the patient's body (soft tissue, fat at -100, bone); below: air, the table's foam
BODY_STEP = 4  # the body's centre is found on every 4th voxel along each axis: enough for a midline


def _foreground_components(segmentation: np.ndarray, foreground_labels: Optional[Sequence[int]]):
    """(mask, components inside the mask's bounding box, their count, that box); labelling only the box is
    what makes whole CTs fast."""
    if segmentation.ndim != 3:
        raise ValueError(f"expected a 3D label array, got shape {segmentation.shape}")
    mask = segmentation != 0 if foreground_labels is None else np.isin(segmentation, foreground_labels)
    if not mask.any():
        return mask, None, 0, None
    box = bounding_box(mask)
    components, count = cc3d.connected_components(mask[box], connectivity=CONNECTIVITY, return_N=True)
    return mask, components, count, box


def _keep_components(segmentation: np.ndarray, mask: np.ndarray, components: np.ndarray, box: Tuple[slice, ...],
                     keep_ids: Sequence[int]) -> np.ndarray:
    kept = segmentation.copy()
    kept[box][mask[box] & ~np.isin(components, keep_ids)] = 0
    return kept


def keep_largest_component(segmentation: np.ndarray,
                           foreground_labels: Optional[Sequence[int]] = None) -> np.ndarray:
    """Keep the largest 18-connected component of ``foreground_labels`` taken together.

    Args:
        segmentation: 3D label array.
        foreground_labels: labels that form the foreground mask; None: every label but background 0.

    Returns:
        A copy in which foreground voxels outside the largest component are background (0).
        An empty foreground stays empty.
    """
    mask, components, count, box = _foreground_components(segmentation, foreground_labels)
    if count <= 1:
        return segmentation.copy()
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    sizes[0] = 0
    return _keep_components(segmentation, mask, components, box, [int(np.argmax(sizes))])


def body_midline(image: np.ndarray, lr_axis: int) -> float:
    """The patient's midline: the (continuous) index along `lr_axis` of the centre of the body, the largest
    6-connected component of voxels above BODY_HU in the CT `image` (HU, 3D); the image's middle when no voxel
    is above BODY_HU."""
    if image.ndim != 3:
        raise ValueError(f"expected a 3D CT array, got shape {image.shape}")
    body, count = cc3d.largest_k(image[::BODY_STEP, ::BODY_STEP, ::BODY_STEP] > BODY_HU, k=1, connectivity=6,
                                 return_N=True, binary_image=True)
    if count == 0:
        return (image.shape[lr_axis] - 1) / 2
    return float(np.argwhere(body)[:, lr_axis].mean() * BODY_STEP)


def keep_largest_component_per_side(segmentation: np.ndarray, lr_axis: int,
                                    foreground_labels: Optional[Sequence[int]] = None,
                                    midline: Optional[float] = None) -> np.ndarray:
    """Keep the largest 18-connected foreground component on each side of the patient's midline.

    Args:
        segmentation: 3D label array.
        lr_axis: array axis that runs left-right in the patient (see :func:`left_right_axis`).
        foreground_labels: labels that form the foreground mask; None: every label but background 0.
        midline: index along `lr_axis` where the sides meet (:func:`body_midline` of the CT); None: the image's
            middle.

    Returns:
        A copy with at most two foreground components, one per side. An empty foreground stays empty.
    """
    mask, components, count, box = _foreground_components(segmentation, foreground_labels)
    if count <= 1:
        return segmentation.copy()
    statistics = cc3d.statistics(components)
    sizes = statistics["voxel_counts"][1:].astype(np.int64)
    centroids = statistics["centroids"][1:, lr_axis] + box[lr_axis].start
    middle = (segmentation.shape[lr_axis] - 1) / 2 if midline is None else midline
    keep_ids = []
    for on_side in (centroids < middle, centroids >= middle):
        if on_side.any():
            keep_ids.append(int(np.argmax(np.where(on_side, sizes, -1))) + 1)
    return _keep_components(segmentation, mask, components, box, keep_ids)


def left_right_axis(direction: Sequence[float]) -> int:
    """Array axis (SimpleITK array order z, y, x) that runs along the patient's left-right axis.

    Args:
        direction: the image's 3x3 direction matrix, row-major as SimpleITK's ``GetDirection()``
            returns it (rows: physical x, y, z; columns: index axes i, j, k).

    Returns:
        The array axis whose index axis points most along physical x (LPS: right to left).
    """
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    index_axis = int(np.argmax(np.abs(matrix[0])))
    return 2 - index_axis
