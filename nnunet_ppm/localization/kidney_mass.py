"""Find the soft-tissue mass a located kidney belongs to, in the CT itself.

Atlases of ordinary kidneys place a kidney, but they cannot know how far this
CT's kidney reaches: registered atlases disagree about its extent, and a large
exophytic tumor or a horseshoe kidney reaches beyond any atlas kidney. In an
arterial-phase CT the kidney's parenchyma and most renal tumors enhance
strongly, and perirenal fat wraps them. :func:`kidney_mass_box` finds that
enhancing mass around a located box and returns its bounding box:

1. the CT around the box (the box grown by ``search_mm``, clipped to the
   image) is averaged into blocks of at most GRID_MM
   (:func:`~.low_resolution.block_average`);
2. *enhancing tissue*: blocks within ENHANCING_HU: renal cortex (150-250 HU
   in the arterial phase) and enhancing tumor, not fat, bowel, muscle or liver
   (below) nor the contrast-filled aorta or bone (above);
3. a morphological closing with a ball of OPENINGS_MM[0] radius fills the
   medulla and sinus between the enhancing cortex (the cortex is thinner than
   the opening: opened alone, a kidney falls apart into its poles), then an
   opening with the same ball cuts thin bridges (renal vessels, thin contacts
   with neighbouring organs), then 6-connected components;
4. the *mass* is the component with most voxels in the box's core (the middle
   third of the box along each axis; the whole box with ``seed="box"``), plus
   the closed tissue within the opening radius of it (what the opening shaved
   off its surface);
5. a mass that runs into the search limit (anywhere but the image border) has
   leaked into a neighbouring organ and is not used: steps 3-5 are tried again
   with the next, wider opening of OPENINGS_MM; when every mass leaked, or the
   core holds no enhancing tissue, there is no mass.

Non-enhancing parts of a tumor (necrosis, cysts) count only where the
dilation of step 4 reaches them: the localiser adds a margin
(:mod:`.atlas_localizer`). The thresholds are our choice (the paper works on
arterial-phase CTs and does not describe its boxes), set on the synthetic CTs of
the tests and benchmarks (kidneys of real KiTS19 label maps;
benchmarks/whole_ct.py), whose tissue values follow published arterial-phase
HU; they are not tuned on real CTs. A mass may include an enhancing neighbour
(spleen, renal vein), which costs ROI voxels, not recall.

Other contrast phases (dataset_conversion/contrast_phases.py): in a
non-contrast CT the kidney (20-45 HU) has no enhancing tissue and the window
holds bone only, so the localiser does not take a mass from there as the
kidney: it estimates the kidney's attenuation inside the atlases' kidney first
and takes an unenhanced kidney's box from the atlases, grown only to an
enhancing mass anywhere in their box that is not bone
(:func:`.atlas_localizer.kidney_box`). In the
venous (nephrographic) phase the kidney enhances (140-200 HU) and is searched
as in the arterial phase, but the liver and spleen (100-130 HU) and the veins
reach into the window too, so its mass leaks into them more often (the search
then fails, or finds a larger mass).
"""
import math
from typing import Optional, Sequence, Tuple

import cc3d
import numpy as np
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.roi import Box
from nnunet_ppm.localization.ellipsoid_morphology import binary_closing, binary_dilation, binary_opening
from nnunet_ppm.localization.localizer import grow_box
from nnunet_ppm.localization.low_resolution import block_average

ENHANCING_HU = (120.0, 300.0)
GRID_MM = 2.0
DEFAULT_SEARCH_MM = 100.0
OPENINGS_MM = (4.0, 5.0, 6.0, 7.0, 8.0)


def _mass(tissue: np.ndarray, core: Tuple[slice, ...], radius_voxels: Sequence[float],
          close: bool) -> Optional[np.ndarray]:
    """The opened component of `tissue` (closed first with `close`) with most voxels in `core`, plus the tissue the
    opening shaved off it."""
    if close:
        tissue = binary_closing(tissue, radius_voxels) | tissue  # | tissue: closing erodes at the border
    components = cc3d.connected_components(binary_opening(tissue, radius_voxels).astype(np.uint8), connectivity=6)
    in_core = components[core]
    ids, counts = np.unique(in_core[in_core > 0], return_counts=True)
    if len(ids) == 0:
        return None
    return binary_dilation(components == ids[np.argmax(counts)], radius_voxels) & tissue


def kidney_mass_box(ct: sitk.Image, box: Box, search_mm: float = DEFAULT_SEARCH_MM,
                    openings_mm: Sequence[float] = OPENINGS_MM, close: bool = True,
                    seed: str = "core") -> Optional[Box]:
    """The bounding box (array order, half-open) of the enhancing mass around `box` in `ct` (HU), or None when
    there is none that stays inside the search region.

    Args:
        ct: the whole CT, Hounsfield units.
        box: the located kidney box, inside the image.
        search_mm: how far beyond `box` the mass may reach (> 0).
        openings_mm: radii of the openings that cut bridges to neighbours, tried in this order.
        close: close the tissue before each opening (step 3); without, a kidney may fall apart into its
            poles, but a mass whose closing bridges it to a neighbour may still be found.
        seed: where the mass must lie (step 4): "core", the middle third of `box`; "box", anywhere in it.
    """
    if seed not in ("core", "box"):
        raise ValueError(f"seed must be 'core' or 'box', got {seed!r}")
    shape, spacing = ct.GetSize()[::-1], ct.GetSpacing()[::-1]
    search = grow_box(box, search_mm, spacing, shape)
    region = sitk.RegionOfInterest(ct, [stop - start for start, stop in search[::-1]],
                                   [start for start, _ in search[::-1]])
    blocks = block_average(region, GRID_MM)  # drops a last partial block: the last whole one is the edge
    factors = [int(round(step / original)) for step, original in zip(blocks.GetSpacing()[::-1], spacing)]
    hu = sitk.GetArrayViewFromImage(blocks)
    tissue = (hu >= ENHANCING_HU[0]) & (hu <= ENHANCING_HU[1])
    core = []
    for (start, stop), (low, _), factor in zip(box, search, factors):
        third = (stop - start) / 3.0 if seed == "core" else 0.0
        core.append(slice(int((start + third - low) // factor), int(math.ceil((stop - third - low) / factor))))
    for opening_mm in openings_mm:
        mass = _mass(tissue, tuple(core), [opening_mm / (step * factor) for step, factor in zip(spacing, factors)],
                     close)
        if mass is None:
            return None
        extent = []
        for axis, ((low, high), factor, size) in enumerate(zip(search, factors, shape)):
            occupied = np.flatnonzero(mass.any(axis=tuple(a for a in range(3) if a != axis)))
            at_low, at_high = occupied[0] == 0, occupied[-1] == mass.shape[axis] - 1
            if (at_low and low > 0) or (at_high and high < size):
                break  # the mass runs into the search limit: it has leaked into a neighbour
            last = high if at_high else low + (int(occupied[-1]) + 1) * factor
            extent.append((low + int(occupied[0]) * factor, last))
        else:
            return tuple(extent)
    return None

