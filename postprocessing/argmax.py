"""Labels from probabilities: argmax over the class axis, as uint8, slab by slab.

numpy's ``argmax(0)`` returns int64 (8 bytes per voxel: 1.3 GB for a
512x512x600 CT) and reduces across the class axis with a stride, several
times slower than comparing the few class arrays element-wise; so labels are
found by comparison, one slab of slices at a time, keeping the extra memory to
one slab. Ties go to the lower class, as in numpy and nnU-Net.
"""
import numpy as np

SLAB_VOXELS = 4_000_000


def _argmax_by_comparison(probabilities: np.ndarray, out: np.ndarray) -> None:
    """Write the argmax over axis 0 of ``probabilities`` into ``out`` (uint8), comparing class by class."""
    best = probabilities[0].copy()
    greater = np.empty(best.shape, bool)
    out[...] = 0
    for label in range(1, probabilities.shape[0]):
        np.greater(probabilities[label], best, out=greater)
        np.putmask(out, greater, label)
        np.maximum(best, probabilities[label], out=best)


def argmax_labels(probabilities: np.ndarray) -> np.ndarray:
    """uint8 argmax over axis 0 of (classes, z, ...) probabilities, computed per slab of slices."""
    labels = np.empty(probabilities.shape[1:], np.uint8)
    slices_per_slab = max(1, SLAB_VOXELS // max(1, int(np.prod(probabilities.shape[2:]))))
    for start in range(0, labels.shape[0], slices_per_slab):
        _argmax_by_comparison(probabilities[:, start:start + slices_per_slab], labels[start:start + slices_per_slab])
    return labels
