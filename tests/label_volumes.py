"""Writing small label maps and CT images as files, for the evaluation tests."""
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk


def write_volume(path: Path, array: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
                 origin: Sequence[float] = (0.0, 0.0, 0.0)) -> Path:
    """Write a (z, y, x) array with SimpleITK; spacing given in array order."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
    image.SetOrigin(tuple(float(o) for o in origin))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def kidney_with_tumor(shape=(16, 24, 24), kidney_box=((3, 13), (5, 19), (5, 19)),
                      tumor_box=((6, 10), (8, 12), (8, 12))) -> np.ndarray:
    """A label map (uint8): a box of kidney (1) holding a box of tumor (2); boxes are half-open (z, y, x)."""
    labels = np.zeros(shape, np.uint8)
    labels[tuple(slice(*b) for b in kidney_box)] = 1
    if tumor_box is not None:
        labels[tuple(slice(*b) for b in tumor_box)] = 2
    return labels


def synthetic_ct(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A crude CT (int16 HU) for a label map: fat background, enhancing kidney, darker tumor, noise."""
    rng = np.random.default_rng(seed)
    hu = np.choose(np.clip(labels, 0, 3), [-100, 200, 80, 10]).astype(float)
    return (hu + rng.normal(0, 15, labels.shape)).astype(np.int16)
