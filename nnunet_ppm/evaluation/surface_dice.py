"""KiTS21/KiTS23 Surface Dice (normalised surface distance): its tolerances and surface elements.

:func:`nnunet_ppm.evaluation.metrics.surface_dice` computes the score from these, exactly as the KiTS21 and
KiTS23 challenges do.

Source (the official evaluation code):

- tolerances: ``HEC_SD_TOLERANCES_MM`` in ``kits23/configuration/labels.py`` of
  github.com/neheller/kits23, identical to the final ``kits21/configuration/labels.py`` of
  github.com/neheller/kits21 (an early KiTS21 version had other values, 2.178 / 1.393 / 1.536 mm, under the
  name ``HEC_NSD_TOLERANCES_MM``; the challenge's metrics code reads ``HEC_SD_TOLERANCES_MM``):
  kidney_and_mass (kidney + tumor + cyst) 1.0330772532390826 mm, mass (tumor + cyst)
  1.1328796488598762 mm, tumor 1.1498198361434828 mm. KiTS derived them from its inter-rater
  disagreement (``kits21/evaluation/compute_tolerances.py``).
- definition: ``compute_metrics_for_label`` in ``kits23/evaluation/metrics.py`` (and in
  ``kits21/evaluation/metrics.py``): both masks empty -> 1, exactly one empty -> 0, else DeepMind's
  surface-distance package (github.com/google-deepmind/surface-distance, PyPI ``surface-distance``):
  ``compute_surface_dice_at_tolerance(compute_surface_distances(gt, pred, spacing), tolerance)``
  with the spacing in array order.

What DeepMind's package computes (and :func:`surface_elements` finds the same way): the surface of
a mask is made of surface elements ("surfels") on the grid of voxel corners. Each 2x2x2 block of voxels
whose voxels are neither all inside nor all outside holds one surfel, placed at the block's centre (a
voxel corner), whose area (mm^2, spacing-aware) is the area of the marching-cubes triangles of that
block configuration (the package's lookup table). Voxels outside the image count as outside, so a mask
touching the image border has a surface there. Surface Dice = (area of the reference surfels within the
tolerance of a predicted surfel + area of the predicted surfels within the tolerance of a reference
surfel) / (total reference + predicted surfel area), with Euclidean distances in mm between surfel
positions and "within" meaning ``<=``.

This is not a count of boundary voxels: the surfels sit on voxel corners, half a voxel along each axis
from the surface-voxel centres that :mod:`nnunet_ppm.evaluation.metrics` uses for MSSD and HD95, and
each one is weighted by its area.

The package's own ``compute_surface_distances`` finds the nearest surfel with a Euclidean distance
transform over the masks' bounding box and sorts the surfels in Python; on whole CTs that takes seconds
per structure. Here the surfels and their areas come from the same lookup table, and nearest distances
from a k-d tree over the surfel positions (exact as well). tests/test_evaluation_metrics.py checks the
result against the package's functions on random shapes.

KiTS scores three regions: kidney+masses, masses, tumor. The structures evaluated here map onto them:
kidney+masses and kidney+tumor (the KiTS19 composite; it is KiTS' kidney+masses region when a dataset
has no cyst label) use the kidney+masses tolerance, and so does the kidney label alone, which KiTS
does not score (our choice: it is the kidney's surface); masses use the masses tolerance, tumor the
tumor tolerance.
"""
from typing import Dict, Iterable, Sequence, Tuple

import numpy as np
from surface_distance.lookup_tables import (ENCODE_NEIGHBOURHOOD_3D_KERNEL,
                                            create_table_neighbour_code_to_surface_area)

KITS_TOLERANCES_MM: Dict[str, float] = {
    "kidney_and_mass": 1.0330772532390826,
    "mass": 1.1328796488598762,
    "tumor": 1.1498198361434828,
}
KITS_TOLERANCE_SOURCE = ("HEC_SD_TOLERANCES_MM in kits23/configuration/labels.py (github.com/neheller/kits23), "
                         "the same values as the final kits21/configuration/labels.py")
KITS_REGION_OF_STRUCTURE: Dict[str, str] = {
    "kidney": "kidney_and_mass",  # KiTS has no kidney-alone region: its kidney+masses tolerance (our choice)
    "kidney_tumor": "kidney_and_mass",
    "kidney_masses": "kidney_and_mass",
    "masses": "mass",
    "tumor": "tumor",
}
ALL_INSIDE_CODE = int(ENCODE_NEIGHBOURHOOD_3D_KERNEL.sum())  # 255: every voxel of the 2x2x2 block inside


def tolerance_mm(structure: str) -> float:
    """The KiTS Surface Dice tolerance (mm) of one of the structures of :mod:`nnunet_ppm.evaluation.labels`."""
    if structure not in KITS_REGION_OF_STRUCTURE:
        raise KeyError(f"no KiTS Surface Dice tolerance for structure {structure!r}; "
                       f"known: {sorted(KITS_REGION_OF_STRUCTURE)}")
    return KITS_TOLERANCES_MM[KITS_REGION_OF_STRUCTURE[structure]]


def surface_elements(mask: np.ndarray, spacing: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """Surfels of a 3D boolean mask as DeepMind's surface-distance defines them: (positions, areas).

    positions: N x 3, in mm, of the voxel corners that hold a surfel (the corner between voxels i-1 and i
    has index i along each axis; position = index x spacing); areas: N surfel areas in mm^2.
    """
    padded = np.pad(mask.astype(np.uint8), 1)
    corners = tuple(n + 1 for n in mask.shape)
    codes = np.zeros(corners, dtype=np.uint8)
    for offset, weight in np.ndenumerate(ENCODE_NEIGHBOURHOOD_3D_KERNEL):
        block = tuple(slice(o, o + n) for o, n in zip(offset, corners))
        codes += padded[block] * np.uint8(weight)
    on_surface = (codes != 0) & (codes != ALL_INSIDE_CODE)
    areas = create_table_neighbour_code_to_surface_area(np.asarray(spacing, dtype=float))[codes[on_surface]]
    return np.argwhere(on_surface) * np.asarray(spacing, dtype=float), areas


def surface_dice_tolerances(structures: Iterable[str]) -> Dict[str, float]:
    """structure -> its KiTS Surface Dice tolerance in mm, for reports."""
    return {structure: tolerance_mm(structure) for structure in structures}
