"""Which array axis points where in the patient.

SimpleITK arrays are indexed (z, y, x) = index axes (2, 1, 0), and the direction
matrix says where each index axis points in LPS patient space (x towards the
patient's left, y posterior, z superior). Files need not be stored axially:
KiTS19 stores the slice axis first in index space, so its arrays come out as
(x, y, -z). The *canonical* array order used here is (superior, posterior,
left): axis 0 runs inferior -> superior, axis 1 anterior -> posterior, axis 2
right -> left, i.e. a plain axial LPS volume. Conversions only permute and flip
axes, so they are exact and invertible.
"""
from typing import Sequence, Tuple

import numpy as np
import SimpleITK as sitk

# Direction of KiTS19/21/23 files: index axis 0 is the slice axis, pointing inferior.
KITS_DIRECTION = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0)
AXIAL_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def anatomical_axes(direction: Sequence[float]) -> Tuple[Tuple[int, int], ...]:
    """For each array axis (z, y, x order): (canonical axis it lies closest to, +1 or -1 for its sense)."""
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    axes = []
    for array_axis in range(3):
        column = matrix[:, 2 - array_axis]  # LPS direction of this array axis
        physical = int(np.argmax(np.abs(column)))  # 0 x (R->L), 1 y (A->P), 2 z (I->S)
        axes.append((2 - physical, 1 if column[physical] > 0 else -1))
    if sorted(canonical for canonical, _ in axes) != [0, 1, 2]:
        raise ValueError(f"direction {tuple(direction)} is too oblique to tell the axial, coronal and sagittal axes apart")
    return tuple(axes)


def slice_axis(direction: Sequence[float]) -> int:
    """The array axis that runs along the patient's long (inferior-superior) axis."""
    return next(axis for axis, (canonical, _) in enumerate(anatomical_axes(direction)) if canonical == 0)


def _permutation_and_flips(direction: Sequence[float]) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    axes = anatomical_axes(direction)
    permutation = tuple(next(a for a in range(3) if axes[a][0] == c) for c in range(3))
    flips = tuple(c for c in range(3) if axes[permutation[c]][1] < 0)
    return permutation, flips


def to_canonical(array: np.ndarray, direction: Sequence[float]) -> np.ndarray:
    """View of a SimpleITK-order array in canonical (superior, posterior, left) order."""
    permutation, flips = _permutation_and_flips(direction)
    return np.flip(np.transpose(array, permutation), flips)


def from_canonical(array: np.ndarray, direction: Sequence[float]) -> np.ndarray:
    """Inverse of :func:`to_canonical`: a canonical array laid out as a file with `direction` stores it."""
    permutation, flips = _permutation_and_flips(direction)
    return np.transpose(np.flip(array, flips), np.argsort(permutation))


def canonical_spacing(spacing: Sequence[float], direction: Sequence[float]) -> Tuple[float, ...]:
    """Voxel spacing (SimpleITK x, y, z order) of an image, in canonical array order."""
    permutation, _ = _permutation_and_flips(direction)
    spacing_zyx = tuple(spacing)[::-1]
    return tuple(float(spacing_zyx[permutation[c]]) for c in range(3))


def orientation_code(direction: Sequence[float]) -> str:
    """DICOM-style three-letter code of a direction matrix (ITK's convention: where each index axis points from,
    e.g. "LPS" for an axial LPS volume), as ``sitk.DICOMOrient`` takes it."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(tuple(float(v) for v in direction))
