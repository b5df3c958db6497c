"""Smooth random fields: lumpy organ surfaces, textures, bowel loops."""
from typing import Sequence

import numpy as np

# std of linearly interpolated unit white noise (2/3 per axis in variance)
_INTERPOLATED_STD = (2.0 / 3.0) ** 1.5


def _linear_weights(size: int, coarse: int) -> np.ndarray:
    """(size, coarse) matrix that linearly interpolates `coarse` samples spread over `size` voxels."""
    position = np.clip((np.arange(size) + 0.5) * coarse / size - 0.5, 0, coarse - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, coarse - 1)
    weights = np.zeros((size, coarse), np.float32)
    np.add.at(weights, (np.arange(size), low), 1 - (position - low))
    np.add.at(weights, (np.arange(size), high), position - low)
    return weights


def smooth_noise(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float],
                 correlation_mm: float) -> np.ndarray:
    """Zero-mean, roughly unit-variance noise varying over about `correlation_mm` (float32).

    White noise on a grid `correlation_mm` apart, linearly interpolated one axis at a time (matrix products).
    """
    nz, ny, nx = shape
    cz, cy, cx = [max(2, int(np.ceil(n * s / correlation_mm)) + 1) for n, s in zip(shape, spacing)]
    field = rng.standard_normal((cz, cy, cx), dtype=np.float32) / np.float32(_INTERPOLATED_STD)
    field = field @ _linear_weights(nx, cx).T
    field = _linear_weights(ny, cy) @ field
    return (_linear_weights(nz, cz) @ field.reshape(cz, ny * nx)).reshape(nz, ny, nx)
