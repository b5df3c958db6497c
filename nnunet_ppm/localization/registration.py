"""Register an atlas's kidney region to a CT at low resolution with SimpleITK (paper section II, its reference [4]).

Transforms map points of the CT (fixed image) to points of the atlas (moving
image), as SimpleITK's registration returns them, so
``sitk.Resample(atlas.sides, target.image, transform, nearest neighbour)``
lays the atlas's kidneys over the CT. Four steps, each started where the
previous one ended, all on :func:`~.low_resolution.registration_intensities`:

1. **Search**: exhaustive searches (SimpleITK's exhaustive optimizer, Mattes
   mutual information) on a coarser copy of both images, started at the
   offset that lays the body centres on each other. First along the
   patient's long axis, over every position that puts the atlas's kidneys
   inside the CT (CTs cover anything from the kidneys alone to chest and
   pelvis, so this axis cannot simply start at the image centres); then
   front-back, `front_back_search_mm` either way (the body's centre moves
   forward with the belly, the kidneys do not: in a painted CT, case_00037,
   they lie 81 mm behind it, in the atlases 33-58 mm, and from the body
   centres alone five of eight atlases put them 45-70 mm too far forward,
   where the affine step did not bring them back); then once more near
   the best offset (front-back a step, along the long axis two either way).
2. **Affine**: multi-resolution affine registration (Mattes mutual
   information, regular-step gradient descent, scales from physical shifts)
   of the atlas's kidney region against the part of the CT around where the
   search put it.
3. **Each kidney**: a translation on top of the affine transform, registering
   one kidney's region of the atlas (``kidney_region_mm`` around it) at a time:
   the two kidneys sit differently from one patient to the next (one lower,
   one further out), which one affine transform of both cannot follow.
4. **Deformable** (optional): a B-spline transform on top of each kidney's
   transform, L-BFGS-B.

:func:`register_atlas` returns one transform per side; :func:`warp_sides`
lays each kidney over the CT with its own.

Determinism: the sampled steps draw their metric samples from ITK's random
generator seeded with ``settings.seed + 1`` (:attr:`RegistrationSettings.metric_sampling_seed`;
ITK's seed 0 means "seed from the wall clock"), and every step runs on one
thread (:func:`single_threaded_itk`): a multi-threaded metric adds up per-thread
partial sums, whose rounding depends on how the voxels were split, which moves
the optimum by up to ~1.5 mm. One atlas registered twice, with any number of
threads in the process, gives the same transform to the last bit; speed comes
from registering several atlases at once in worker processes
(:class:`~.atlas_localizer.AtlasLocalizer`).
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from nnunet_ppm.localization.atlas_set import SIDE_CODES, Atlas
from nnunet_ppm.localization.low_resolution import (body_centre, physical_extent, registration_intensities,
                                                    resample_ct)

MIN_CROP_VOXELS = 8  # the affine step needs some CT around the atlas (and room for its shrink factors)
MAX_ITK_SEED = 2 ** 32 - 1  # ITK seeds are 32-bit unsigned; metric_sampling_seed = seed + 1 must fit

class RegistrationError(Exception):
    """An atlas could not be registered to a CT."""


@dataclass(frozen=True)
class RegistrationSettings:
    """How hard registration tries. The defaults are for use; tests use fewer iterations.

    Attributes:
        affine_iterations: gradient-descent iterations per resolution level.
        shrink_factors / smoothing_sigmas: the affine step's resolution levels (sigmas in voxels).
        sampling_fraction: share of voxels the metric samples (random, seeded by `seed`).
        histogram_bins: Mattes mutual information bins.
        search_step_mm: step of the exhaustive search along the patient axis.
        front_back_search_mm / front_back_step_mm: how far and in what steps the search goes front-back.
        search_shrink: the search runs on images shrunk by this factor.
        crop_margin_mm: how much CT around the searched position the affine step sees.
        kidney_region_mm: atlas region around one kidney that step 3 registers.
        kidney_iterations: gradient-descent iterations of step 3.
        deformable: add the B-spline step.
        bspline_mesh_size: B-spline control mesh (per axis) over the cropped CT.
        bspline_iterations: L-BFGS-B iterations of the B-spline step.
        seed: seeds the metric's random sampling (:attr:`metric_sampling_seed`); >= 0.
    """

    affine_iterations: int = 50
    shrink_factors: Tuple[int, ...] = (2, 1)
    smoothing_sigmas: Tuple[float, ...] = (1.0, 0.0)
    sampling_fraction: float = 0.25
    histogram_bins: int = 32
    search_step_mm: float = 8.0
    front_back_search_mm: float = 64.0
    front_back_step_mm: float = 16.0
    search_shrink: int = 2
    crop_margin_mm: float = 20.0
    kidney_region_mm: float = 20.0
    kidney_iterations: int = 50
    deformable: bool = False
    bspline_mesh_size: int = 3
    bspline_iterations: int = 20
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.seed < MAX_ITK_SEED:
            raise ValueError(f"the registration seed must be in 0..{MAX_ITK_SEED - 1}, got {self.seed}")

    @property
    def metric_sampling_seed(self) -> int:
        """The seed ITK's sampler gets: `seed` + 1, since ITK reads 0 as "seed from the wall clock"."""
        return self.seed + 1

    def describe(self) -> dict:
        fields = {name: (list(value) if isinstance(value, tuple) else value) for name, value in vars(self).items()}
        return {**fields, "metric_sampling_seed": self.metric_sampling_seed, "threads_per_registration": 1}


@dataclass
class RegistrationTarget:
    """A CT prepared once for registering every atlas: low resolution, its coarse copy and its body centre."""

    image: sitk.Image
    coarse: sitk.Image
    body_centre: np.ndarray

    @classmethod
    def from_ct(cls, ct: sitk.Image, spacing_mm: float, settings: RegistrationSettings) -> "RegistrationTarget":
        low_res = resample_ct(ct, spacing_mm)
        image = registration_intensities(low_res)
        return cls(image, sitk.BinShrink(image, [settings.search_shrink] * 3), body_centre(low_res))


@contextmanager
def single_threaded_itk() -> Iterator[None]:
    """Inside: ITK runs every filter, registration and metric on one thread (the process-wide default).

    Setting the registration method's own thread count is not enough: its metric
    still splits the voxels over ITK's global default number of threads.
    """
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def _metric(settings: RegistrationSettings, sampled: bool) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(settings.histogram_bins)
    method.SetInterpolator(sitk.sitkLinear)
    if sampled:
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(settings.sampling_fraction, settings.metric_sampling_seed)
    return method


def _searched_part(image: sitk.Image, moving: sitk.Image, offset: np.ndarray, reach_mm: np.ndarray) -> sitk.Image:
    """The part of `image` that the offsets `offset` +- `reach_mm` (per physical axis) map into `moving`.

    The metric drops every sample that falls outside `moving`, so searching on this part evaluates the same
    samples as on the whole CT (two voxels more on each side, for the interpolation at the edge) at 40 % of
    the time. Only the histogram's range, which Mattes mutual information takes from the fixed image, can
    differ (the part's brightest voxel): on the 60 painted CTs of benchmarks/whole_ct.py, 57 kept their
    boxes and confidences, and three an atlas's vote (confidence +-0.01, one box face 2 voxels).
    """
    extent = np.array([physical_extent(moving, axis) for axis in range(3)])     # (axis, min / max), mm
    reach = reach_mm + 2 * max(image.GetSpacing())  # two voxels more (spacing is per index axis, not physical)
    bounds = (extent[:, 0] - offset - reach, extent[:, 1] - offset + reach)
    corners = np.array([image.TransformPhysicalPointToContinuousIndex(
        [float(bounds[i][0]), float(bounds[j][1]), float(bounds[k][2])]) for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    size = np.asarray(image.GetSize())
    start = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, size)
    stop = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, size)
    if np.any(stop <= start):
        raise RegistrationError("no searched position lays the atlas's kidney region on the CT")
    return sitk.RegionOfInterest(image, (stop - start).tolist(), start.tolist())


def _exhaustive_search(target: RegistrationTarget, moving: sitk.Image, offset: np.ndarray, steps: Sequence[int],
                       step_mm: float, settings: RegistrationSettings) -> np.ndarray:
    """The offset (x, y, z; mm, CT -> atlas) with the best mutual information of `offset` +- `steps` * `step_mm`."""
    fixed = _searched_part(target.coarse, moving, offset, np.asarray(steps) * step_mm)
    transform = sitk.TranslationTransform(3, offset.tolist())
    method = _metric(settings, sampled=False)
    method.SetOptimizerAsExhaustive(list(steps), stepLength=step_mm)
    method.SetOptimizerScales([1.0, 1.0, 1.0])
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    return np.asarray(transform.GetOffset())


def search_translation(target: RegistrationTarget, atlas: Atlas, settings: RegistrationSettings) -> np.ndarray:
    """Step 1: the (x, y, z) offset (mm, CT -> atlas) with the best mutual information along the patient axis, then
    front-back, then both once more near the best offset."""
    offset = np.asarray(atlas.body_centre, dtype=float) - target.body_centre
    z_low, z_high = physical_extent(target.coarse, 2)
    kidney_z = atlas.kidney_centre[2]
    # offsets that map some CT slice onto the atlas's kidney centre
    first, last = kidney_z - z_high, kidney_z - z_low
    offset[2] = (first + last) / 2
    moving = sitk.BinShrink(atlas.registration_image, [settings.search_shrink] * 3)
    z_steps = int(np.ceil((last - first) / 2 / settings.search_step_mm))
    offset = _exhaustive_search(target, moving, offset, [0, 0, z_steps], settings.search_step_mm, settings)
    front_back_steps = int(round(settings.front_back_search_mm / settings.front_back_step_mm))
    offset = _exhaustive_search(target, moving, offset, [0, front_back_steps, 0], settings.front_back_step_mm,
                                settings)
    return _exhaustive_search(target, moving, offset, [0, 1, 2], settings.search_step_mm, settings)


def _crop_around(image: sitk.Image, region: sitk.Image, to_region: sitk.Transform, margin_mm: float) -> sitk.Image:
    """The part of `image` that `to_region` maps onto `region` (its corners), plus `margin_mm`; clipped to the image."""
    size = region.GetSize()
    corners = [region.TransformIndexToPhysicalPoint([i * (size[0] - 1), j * (size[1] - 1), k * (size[2] - 1)])
               for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    back = to_region.GetInverse()
    indices = np.array([image.TransformPhysicalPointToContinuousIndex(back.TransformPoint(c)) for c in corners])
    margin = margin_mm / min(image.GetSpacing())
    low = np.clip(np.floor(indices.min(axis=0) - margin).astype(int), 0, image.GetSize())
    high = np.clip(np.ceil(indices.max(axis=0) + margin).astype(int) + 1, 0, image.GetSize())
    if np.any(high - low < MIN_CROP_VOXELS):
        raise RegistrationError("the atlas's kidney region lies outside the CT after the search")
    return sitk.RegionOfInterest(image, (high - low).tolist(), low.tolist())


def register_affine(fixed: sitk.Image, atlas: Atlas, offset: np.ndarray,
                    settings: RegistrationSettings) -> sitk.AffineTransform:
    """Step 2: multi-resolution affine registration started at the translation `offset`."""
    transform = sitk.AffineTransform(3)
    transform.SetCenter((atlas.kidney_centre - offset).tolist())  # the kidneys' centre in CT coordinates
    transform.SetTranslation(offset.tolist())
    method = _metric(settings, sampled=True)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=8.0, minStep=0.2,
                                                    numberOfIterations=settings.affine_iterations,
                                                    relaxationFactor=0.7)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_sigmas))
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, atlas.registration_image)
    return transform


def register_deformable(fixed: sitk.Image, atlas: Atlas, affine: sitk.Transform,
                        settings: RegistrationSettings) -> sitk.Transform:
    """Step 4: a B-spline refinement on top of `affine` (a kidney's transform of step 3); returns their composition."""
    bspline = sitk.BSplineTransformInitializer(fixed, [settings.bspline_mesh_size] * 3)
    method = _metric(settings, sampled=True)
    method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=settings.bspline_iterations)
    method.SetMovingInitialTransform(affine)
    method.SetInitialTransform(bspline, inPlace=True)
    method.Execute(fixed, atlas.registration_image)
    return sitk.CompositeTransform([affine, bspline])


def refine_kidney(target: RegistrationTarget, atlas: Atlas, side: str, transform: sitk.Transform,
                  settings: RegistrationSettings) -> sitk.Transform:
    """Step 3: a translation of one kidney (`side`) on top of `transform`; returns their composition."""
    voxels = np.argwhere(sitk.GetArrayViewFromImage(atlas.sides) == SIDE_CODES[side])
    margin = int(np.ceil(settings.kidney_region_mm / min(atlas.sides.GetSpacing())))
    shape = np.asarray(atlas.sides.GetSize()[::-1])
    low, high = np.maximum(voxels.min(axis=0) - margin, 0), np.minimum(voxels.max(axis=0) + 1 + margin, shape)
    moving = sitk.RegionOfInterest(atlas.registration_image, (high - low)[::-1].tolist(), low[::-1].tolist())
    fixed = _crop_around(target.image, moving, transform, settings.crop_margin_mm)
    translation = sitk.TranslationTransform(3)
    method = _metric(settings, sampled=True)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=4.0, minStep=0.2,
                                                    numberOfIterations=settings.kidney_iterations,
                                                    relaxationFactor=0.7)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetMovingInitialTransform(transform)
    method.SetInitialTransform(translation, inPlace=True)
    method.Execute(fixed, moving)
    return sitk.CompositeTransform([transform, translation])


def register_atlas(target: RegistrationTarget, atlas: Atlas, settings: RegistrationSettings) -> Dict[str, sitk.Transform]:
    """All steps, on one thread: per side, the transform mapping CT points to atlas points.

    Raises RegistrationError when it fails.
    """
    with single_threaded_itk():
        try:
            offset = search_translation(target, atlas, settings)
            fixed = _crop_around(target.image, atlas.registration_image, sitk.TranslationTransform(3, offset.tolist()),
                                 settings.crop_margin_mm)
            affine = register_affine(fixed, atlas, offset, settings)
            transforms = {}
            for side in SIDE_CODES:
                transforms[side] = refine_kidney(target, atlas, side, affine, settings)
                if settings.deformable:
                    transforms[side] = register_deformable(fixed, atlas, transforms[side], settings)
        except RuntimeError as error:  # SimpleITK reports failures (e.g. no overlap left) as RuntimeError
            raise RegistrationError(f"atlas {atlas.name}: {str(error).strip().splitlines()[-1]}") from error
        return transforms


def warp_sides(atlas: Atlas, transforms: Dict[str, sitk.Transform], target: RegistrationTarget) -> np.ndarray:
    """The atlas's side-coded kidneys, each laid over the CT's low-resolution grid with its transform (z y x)."""
    warped = np.zeros(sitk.GetArrayViewFromImage(target.image).shape, np.uint8)
    for side, code in SIDE_CODES.items():
        kidney = sitk.Resample(sitk.Cast(atlas.sides == code, sitk.sitkUInt8), target.image, transforms[side],
                               sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        warped[(sitk.GetArrayViewFromImage(kidney) > 0) & (warped == 0)] = code
    return warped
