"""Low-resolution copies of CTs and masks for registration, and the intensities registration sees.

Every grid made here has isotropic `spacing_mm` voxels, the direction of the
source image and covers the same physical extent (the first voxel's corner
stays in place), so physical points keep their meaning between full and low
resolution.
"""
import math
from typing import Sequence

import numpy as np
import SimpleITK as sitk

# HU window registration works in: bone and contrast-filled arteries (above BRIGHT_HU) become soft tissue,
# so mutual information follows the enhancing kidneys and organs, not the spine that looks alike at every level
WINDOW_HU = (-150.0, 300.0)
BRIGHT_HU = 350.0
SOFT_TISSUE_HU = 40.0
BODY_HU = -500.0
OUTSIDE_HU = -1024.0


def low_resolution_grid(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """An empty image (uint8) with isotropic `spacing_mm` voxels covering `image`'s extent, same direction."""
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    size = [max(int(math.ceil(n * s / spacing_mm - 1e-6)), 1) for n, s in zip(image.GetSize(), spacing)]
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    corner = np.asarray(image.GetOrigin(), dtype=float) - direction @ (spacing / 2)
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin((corner + direction @ np.full(3, spacing_mm / 2)).tolist())
    return grid


def block_average(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """Average blocks of whole voxels (at most `spacing_mm` wide) before interpolating: cheap anti-aliasing."""
    factors = [max(int(spacing_mm // s), 1) for s in image.GetSpacing()]
    image = sitk.Cast(image, sitk.sitkFloat32)
    return sitk.BinShrink(image, factors) if max(factors) > 1 else image


def resample_ct(ct: sitk.Image, spacing_mm: float) -> sitk.Image:
    """The CT (HU, float32) on its :func:`low_resolution_grid`; outside the image is air."""
    return sitk.Resample(block_average(ct, spacing_mm), low_resolution_grid(ct, spacing_mm), sitk.Transform(),
                         sitk.sitkLinear, OUTSIDE_HU, sitk.sitkFloat32)


def resample_mask(mask: sitk.Image, spacing_mm: float) -> sitk.Image:
    """A binary mask (uint8 0/1) on its :func:`low_resolution_grid`: low-res voxels at least half inside."""
    fraction = sitk.Resample(block_average(mask > 0, spacing_mm), low_resolution_grid(mask, spacing_mm),
                             sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.Cast(fraction >= 0.5, sitk.sitkUInt8)


def registration_intensities(low_res_ct: sitk.Image) -> sitk.Image:
    """What registration compares: HU clipped to WINDOW_HU, with voxels brighter than BRIGHT_HU set to soft tissue."""
    hu = sitk.GetArrayFromImage(low_res_ct).astype(np.float32)
    hu[hu > BRIGHT_HU] = SOFT_TISSUE_HU
    windowed = sitk.GetImageFromArray(np.clip(hu, *WINDOW_HU))
    windowed.CopyInformation(low_res_ct)
    return windowed


def body_centre(low_res_ct: sitk.Image) -> np.ndarray:
    """Physical centre (LPS, mm) of the voxels above BODY_HU; raises ValueError when there are none."""
    voxels = np.argwhere(sitk.GetArrayViewFromImage(low_res_ct) > BODY_HU)
    if len(voxels) == 0:
        raise ValueError(f"no voxel above {BODY_HU:g} HU: is this a CT in Hounsfield units?")
    centre = voxels.mean(axis=0)[::-1]
    return np.asarray(low_res_ct.TransformContinuousIndexToPhysicalPoint(centre.tolist()))


def physical_extent(image: sitk.Image, axis: int) -> Sequence[float]:
    """(min, max) of physical coordinate `axis` (0 x, 1 y, 2 z) over the voxel centres of `image`."""
    size = image.GetSize()
    corners = [image.TransformIndexToPhysicalPoint([i * (size[0] - 1), j * (size[1] - 1), k * (size[2] - 1)])
               for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    values = [corner[axis] for corner in corners]
    return min(values), max(values)
