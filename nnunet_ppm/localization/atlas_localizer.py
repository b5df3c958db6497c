"""Multi-atlas kidney localisation (paper section II, its reference [4]).

The CT's voxels are first stored in the atlases' orientation (axes permuted
or flipped, never resampled), so a CT gives the same boxes in physical space
however it is stored (tested: LPS, RAS, sagittal first, flipped along the body
axis). Every atlas is registered to the CT at the atlases' low resolution
(:mod:`.registration`), its kidneys are laid over the CT, the kidney masks are
fused (:mod:`.fusion`), and each fused kidney's region becomes a box in the
CT's full-resolution voxel indices: the *atlas box*. Atlases say where a kidney
is, not how far it reaches: the region where two of them agree is often half
as large again as the kidney, and a large tumor or a horseshoe kidney reaches
beyond every atlas kidney. So the kidney's box comes from the CT where the CT
shows the kidney (:func:`kidney_box`):

* the enhancing mass the kidney belongs to (:mod:`.kidney_mass`, searched
  from the atlas box) is the kidney when the atlases' majority-vote kidney
  touches it (at least MIN_ATLAS_SHARE of its box inside the mass's bounding
  box; affine registration shifts it by 10-30 mm): the box is then the
  mass's, grown by MASS_MARGIN_MM for the rim the enhancement misses
  (non-enhancing tumor, partial voxels). A kidney without tumor gets a box the
  size of the kidney, so its ROI is the ROI window; only a kidney or tumor
  that reaches beyond the window enlarges it. On a CT whose slices are
  coarser than OPENINGS_MM[0] (5 mm slices, fine pixels) the opening cuts
  in-plane only, and the mass is taken all the same: on 20 painted CTs per
  phase it held every kidney the atlas box missed and made the boxes tighter
  (docs/whole_ct.md; until then such CTs took the rule below);
* otherwise (no mass, a mass that leaked into a neighbour, a mass elsewhere)
  the atlas box, grown to hold the mass an unclosed search finds around it
  (a large tumor whose closed mass leaked into a neighbour), then by
  ATLAS_MARGIN_MM (five low-resolution voxels: registered atlases put a
  kidney up to that far off);
* on a CT coarser than OPENINGS_MM[0] in-plane too (most of the demo's tiny
  CTs: 3.6-5.0 mm pixels, 5-7 mm slices), where the opening cannot cut the
  kidney from its vessels at all, or with the mass search turned off: the
  atlas box grown by ATLAS_MARGIN_MM, with no search (there an unclosed mass
  ran along the vessels to the scan's ends and tripled the demo's boxes
  along each axis; docs/demo.md);
* but first, whether the kidney enhances: its attenuation is estimated from
  the CT inside the atlases' kidney (:func:`kidney_attenuation`: the median HU
  of the soft tissue in the middle third of the majority-vote kidney's box; a
  box that holds only fat tells nothing and takes the rules above). Below
  UNENHANCED_HU the middle of the kidney does not enhance: a non-contrast CT
  (kidney 20-45 HU, no brighter than the liver, spleen, muscle and bowel
  around it; the mass search's window holds only bone there) or a kidney
  whose middle is a non-enhancing tumor or cyst (the enhancing mass is then
  its rim and misses the tumor), or atlases that put the kidney beside its
  place (an unusual body or a large tumor; their box's middle is then bowel
  or muscle). The box is the atlas box, grown to hold the enhancing mass found
  anywhere in it (:func:`~.kidney_mass.kidney_mass_box` with ``seed="box"``;
  never bone, :func:`is_bone`; a non-contrast CT has none), then by
  UNENHANCED_MARGIN_MM, wider than ATLAS_MARGIN_MM as the mass search does not
  reach a non-enhancing tumor. Enhancing kidneys, arterial
  (core 120-220 HU on the painted CTs) and venous (nephrographic, 140-200),
  take the rules above; a venous kidney's neighbours (liver and spleen
  100-130 HU, vessels 130-200) reach into the enhancing window too, so its
  mass leaks into them more often (benchmarks/RESULTS.md measures the cost).

The notes say which rule gave each box, when a kidney's box holds little
enhancing tissue (:func:`enhanced_share` below ENHANCED_SHARE: a non-contrast
CT; the ROI model was trained on arterial-phase CTs; on the painted CTs the
share in each kidney's own box is 0.02-0.09 in non-contrast CTs, 0.15-0.61 in
venous and 0.36-0.58 in arterial ones), and each edge of the scan that a box
reaches before its margin (a scan that ends inside a kidney: the box is
clipped to the scan and the kidney may be cut off). An atlas that fails to
register is left out and named in the notes.

The paper localises arterial-phase CTs only: the enhancement rule, the note
and their thresholds are our choice, set on the painted CTs
(dataset_conversion/contrast_phases.py), not on real ones.

The same CT, atlases and settings give the same boxes, labels and
confidences: each registration is seeded from ``settings.seed`` and runs on
one thread (:mod:`.registration`), and the atlases are registered in
`num_workers` worker processes whose results are fused in atlas order, so the
number of workers and threads changes the time, never the result. Another
seed draws other metric samples and may move a registration by several mm;
the fused box does not follow one atlas (:mod:`.fusion`: a voxel counts
where two supporting atlases agree), and benchmarks/whole_ct.py
``--registration-seeds`` measures how much recall still depends on the seed.
"""
import math
import multiprocessing
import weakref
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.orientation import orientation_code
from nnunet_ppm.dataset_conversion.roi import Box
from nnunet_ppm.localization.atlas_set import Atlas, AtlasSet
from nnunet_ppm.localization.fusion import FusedKidney, fuse_kidneys
from nnunet_ppm.localization.kidney_mass import DEFAULT_SEARCH_MM, ENHANCING_HU, OPENINGS_MM, kidney_mass_box
from nnunet_ppm.localization.localizer import CtCase, KidneyLocalizer, LocatedKidney, box_in, edge_notes, grow_box
from nnunet_ppm.localization.registration import (RegistrationError, RegistrationSettings, RegistrationTarget,
                                                  register_atlas, warp_sides)

ATLAS_MARGIN_MM = 20.0
MASS_MARGIN_MM = 5.0
MIN_ATLAS_SHARE = 0.1
UNENHANCED_HU = 60.0
ENHANCED_SHARE = 0.12
FAT_HU = -30.0  # fat (-110 to -85 HU) and air lie below: not the kidney
UNENHANCED_MARGIN_MM = 30.0
BONE_RATIO = 0.5


def region_box(region: np.ndarray, grid: sitk.Image, image: sitk.Image) -> Box:
    """The box of `image` voxels (array order, half-open, clipped) covering the voxels of `region` on `grid`.

    `region` is a boolean array on the low-resolution `grid`; every full-resolution
    voxel whose centre lies inside one of its voxels is inside the box.
    """
    voxels = np.argwhere(region)
    low, high = voxels.min(axis=0) - 0.5, voxels.max(axis=0) + 0.5  # outer faces, continuous index (z y x)
    corners = [(z, y, x) for z in (low[0], high[0]) for y in (low[1], high[1]) for x in (low[2], high[2])]
    indices = np.array([image.TransformPhysicalPointToContinuousIndex(
        grid.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(z)))) for z, y, x in corners])[:, ::-1]
    shape = image.GetSize()[::-1]
    box = []
    for axis in range(3):
        start = math.ceil(indices[:, axis].min() - 1e-6)  # first voxel centre at or after the face
        stop = math.floor(indices[:, axis].max() + 1e-6) + 1
        box.append((min(max(start, 0), shape[axis]), min(max(stop, 0), shape[axis])))
    return tuple(box)


def share_inside(inner: Box, outer: Box) -> float:
    """The share of box `inner`'s volume that lies inside box `outer` (both half-open voxel boxes)."""
    volume = np.prod([stop - start for start, stop in inner])
    overlap = np.prod([max(0, min(stop, o_stop) - max(start, o_start))
                       for (start, stop), (o_start, o_stop) in zip(inner, outer)])
    return float(overlap / volume) if volume else 0.0


class KidneyBox(NamedTuple):
    """A fused kidney's box (margin included), the box the CT or the atlases gave before the margin, and which."""

    box: Box
    found: Box
    source: str


def kidney_attenuation(ct: sitk.Image, box: Box) -> Optional[float]:
    """A kidney's attenuation: the median HU of `ct`'s soft tissue (above FAT_HU) in the middle third (along each
    axis) of `box`; None where that holds only fat or air (an atlas kidney that missed the CT's kidney)."""
    core = tuple(slice(start + (stop - start) // 3, stop - (stop - start) // 3) for start, stop in box)
    hu = sitk.GetArrayViewFromImage(ct)[core]
    tissue = hu[hu > FAT_HU]
    return float(np.median(tissue)) if tissue.size else None


def enhanced_share(ct: sitk.Image, box: Box) -> Optional[float]:
    """How much a kidney enhances: the share of `ct`'s soft tissue (above FAT_HU) in `box` that lies above
    ENHANCING_HU[0]; None where the box holds only fat or air (an atlas kidney that missed the CT's kidney)."""
    hu = sitk.GetArrayViewFromImage(ct)[tuple(slice(start, stop) for start, stop in box)]
    tissue = hu[hu > FAT_HU]
    return float(np.mean(tissue >= ENHANCING_HU[0])) if tissue.size else None


def is_bone(ct: sitk.Image, box: Box) -> bool:
    """Whether the enhancing mass in `box` is bone: the box grown by MASS_MARGIN_MM (a bone's cortex wraps its
    enhancing-window core) holds more than BONE_RATIO times as much tissue above ENHANCING_HU as within it."""
    grown = grow_box(box, MASS_MARGIN_MM, ct.GetSpacing()[::-1], ct.GetSize()[::-1])
    hu = sitk.GetArrayViewFromImage(ct)[tuple(slice(start, stop) for start, stop in grown)]
    enhancing = np.count_nonzero((hu >= ENHANCING_HU[0]) & (hu <= ENHANCING_HU[1]))
    return np.count_nonzero(hu > ENHANCING_HU[1]) > BONE_RATIO * enhancing


def kidney_box(ct: sitk.Image, fused: FusedKidney, grid: sitk.Image, mass_search_mm: float) -> KidneyBox:
    """A fused kidney's box in `ct`'s voxel indices (the module docstring's rules).

    Args:
        ct: the whole CT (HU).
        fused: the atlases' kidney on the low-resolution `grid`.
        mass_search_mm: how far beyond the atlas box the kidney's enhancing mass may reach (0: the atlas box).
    """
    spacing, shape = ct.GetSpacing()[::-1], ct.GetSize()[::-1]
    atlas_box = region_box(fused.region, grid, ct)
    atlas_kidney = region_box(fused.majority, grid, ct) if fused.majority.any() else atlas_box
    attenuation = kidney_attenuation(ct, atlas_kidney)
    if not mass_search_mm:
        return KidneyBox(grow_box(atlas_box, ATLAS_MARGIN_MM, spacing, shape), atlas_box,
                         "the atlases (mass search off)")
    # the closing and opening need a ball of at least one voxel: where not even the two finest axes resolve it, the
    # kidney cannot be told from the vessels beside it (a mass, closed or not, runs along them), and the atlas box
    # alone applies; where only the slices are coarser (5 mm slices), the opening cuts in-plane
    resolved = sorted(spacing)[1] <= OPENINGS_MM[0]
    if attenuation is not None and attenuation < UNENHANCED_HU:
        # enhancing tissue anywhere in the atlas box (a kidney the atlases put beside its place, around a tumor
        # that does not enhance) grows the box, never shrinks it; a non-contrast CT has none, bone aside
        mass = kidney_mass_box(ct, atlas_box, mass_search_mm, seed="box") if resolved else None
        mass = None if mass is None or is_bone(ct, mass) else mass
        grown = atlas_box if mass is None else tuple((min(start, first), max(stop, last))
                                                     for (start, stop), (first, last) in zip(atlas_box, mass))
        return KidneyBox(grow_box(grown, UNENHANCED_MARGIN_MM, spacing, shape), grown,
                         f"the atlases (the kidney's middle does not enhance, median {attenuation:.0f} HU)"
                         + ("" if mass is None else ", grown to the enhancing mass in their box"))
    if not resolved:
        return KidneyBox(grow_box(atlas_box, ATLAS_MARGIN_MM, spacing, shape), atlas_box,
                         f"the atlases (the CT is coarser than {OPENINGS_MM[0]:g} mm in-plane: no mass search)")
    mass = kidney_mass_box(ct, atlas_box, mass_search_mm)
    if mass is not None and share_inside(atlas_kidney, mass) >= MIN_ATLAS_SHARE:
        return KidneyBox(grow_box(mass, MASS_MARGIN_MM, spacing, shape), mass, "the kidney's enhancing mass in the CT")
    grown = kidney_mass_box(ct, atlas_box, mass_search_mm, close=False)
    if grown is not None:  # e.g. a large tumor whose closed mass leaked into a neighbour: grow, never shrink
        atlas_box = tuple((min(start, first), max(stop, last))
                          for (start, stop), (first, last) in zip(atlas_box, grown))
    return KidneyBox(grow_box(atlas_box, ATLAS_MARGIN_MM, spacing, shape), atlas_box,
                     "the atlases (no enhancing kidney mass confirmed)")


def unenhanced_note(side: str, box: Box, ct: sitk.Image) -> List[str]:
    """A note when a kidney's box (before its margin) holds little enhancing tissue (:func:`enhanced_share` below
    ENHANCED_SHARE): the CT is not in the arterial phase the ROI model was trained on."""
    share = enhanced_share(ct, box)
    if share is None or share >= ENHANCED_SHARE:
        return []
    return [f"{side} kidney: {share:.0%} of the soft tissue in its box above "
            f"{ENHANCING_HU[0]:g} HU, unenhanced: this CT is not in the arterial phase the model was trained on; "
            f"check its labels"]


def register_and_warp(job: Tuple[RegistrationTarget, Atlas, RegistrationSettings]) -> Tuple[Optional[np.ndarray], str]:
    """One atlas registered to the CT: (its warped side-coded kidneys, "") or (None, why it failed)."""
    target, atlas, settings = job
    try:
        return warp_sides(atlas, register_atlas(target, atlas, settings), target), ""
    except RegistrationError as error:
        return None, str(error)


class AtlasLocalizer(KidneyLocalizer):
    """Kidneys from atlases registered to the CT, fused by majority vote.

    Args:
        atlas_set: the atlases (``nnunet_ppm atlas build``).
        settings: registration settings.
        kidney_margin_mm: see :class:`~.localizer.KidneyLocalizer` (added to the margins of :func:`kidney_box`).
        mass_search_mm: how far beyond the atlas box the kidney's enhancing mass may reach
            (:func:`~.kidney_mass.kidney_mass_box`); 0: boxes from the atlases only.
        num_workers: worker processes registering atlases at once (1: in this process); the result
            does not depend on it. The workers start with the first CT and serve every later one.
    """

    name = "atlas"

    def __init__(self, atlas_set: AtlasSet, settings: RegistrationSettings = RegistrationSettings(),
                 kidney_margin_mm: float = 0.0, mass_search_mm: float = DEFAULT_SEARCH_MM,
                 num_workers: int = 1):
        super().__init__(kidney_margin_mm)
        if mass_search_mm < 0:
            raise ValueError(f"mass_search_mm must be >= 0, got {mass_search_mm}")
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self.atlas_set = atlas_set
        self.registration = settings
        self.mass_search_mm = mass_search_mm
        self.num_workers = num_workers
        self._pool, self._finalizer = None, None

    def settings(self) -> dict:
        return {"atlases": str(self.atlas_set.folder), "atlas_names": [a.name for a in self.atlas_set.atlases],
                "spacing_mm": self.atlas_set.spacing_mm, "registration": self.registration.describe(),
                "mass_search_mm": self.mass_search_mm}

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # terminates the worker processes
        self._pool, self._finalizer = None, None

    def warped_atlases(self, target: RegistrationTarget) -> Tuple[List[np.ndarray], List[str]]:
        """Every atlas's side-coded kidneys on the CT's low-resolution grid, and notes on atlases that failed."""
        jobs = [(target, atlas, self.registration) for atlas in self.atlas_set.atlases]
        workers = min(self.num_workers, len(jobs))
        if workers <= 1:
            results = [register_and_warp(job) for job in jobs]
        else:
            if self._pool is None:
                self._pool = multiprocessing.get_context("spawn").Pool(workers)
                self._finalizer = weakref.finalize(self, self._pool.terminate)
            results = self._pool.map(register_and_warp, jobs, chunksize=1)
        warped = [kidneys for kidneys, _ in results if kidneys is not None]
        notes = [f"left out: {failure}" for kidneys, failure in results if kidneys is None]
        return warped, notes

    def find(self, ct: CtCase) -> Tuple[List[LocatedKidney], List[str]]:
        # the CT's voxels in the atlases' orientation (axes permuted or flipped, not resampled): however the CT is
        # stored, registration sees the same image and the boxes are the same in physical space
        image = sitk.DICOMOrient(ct.image, orientation_code(self.atlas_set.atlases[0].ct.GetDirection()))
        target = RegistrationTarget.from_ct(image, self.atlas_set.spacing_mm, self.registration)
        warped, notes = self.warped_atlases(target)
        kidneys = []
        for fused in fuse_kidneys(warped):
            found = kidney_box(image, fused, target.image, self.mass_search_mm)
            kidneys.append(LocatedKidney(fused.side, box_in(found.box, image, ct.image), fused.confidence))
            notes.append(f"{fused.side} kidney: {fused.supporters} of {len(warped)} atlases agree"
                         + (" (no majority; weak consensus)" if fused.weak else "") + f"; box from {found.source}")
            notes += edge_notes(fused.side, found.found, image)
            notes += unenhanced_note(fused.side, found.found, image)
        return kidneys, notes
