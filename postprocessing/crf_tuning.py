"""Grid search of the CRF parameters on validation cases, scored by mean kidney and tumor Dice.

Each case is loaded once and post-processed with every grid point (the same
pipeline as prediction: CRF, then the component rule when enabled). Dice is
the project's evaluation (``nnunet_ppm.evaluation``): per label as in the
paper's Eq. 2, the "kidney" and "tumor" structures of the dataset's label
scheme; a structure absent from both reference and prediction counts as 1.
"""
import itertools
from dataclasses import replace
from typing import Dict, List, Sequence

import numpy as np

from nnunet_ppm.evaluation.labels import LabelScheme
from nnunet_ppm.evaluation.metrics import dice, mask_of
from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_ppm.postprocessing.pipeline import PostprocessingSettings, postprocess_probabilities

SCORED_STRUCTURES = ("kidney", "tumor")

DEFAULT_GRID: Dict[str, List[float]] = {
    "appearance_weight": [3.0, 5.0, 10.0],
    "appearance_sigma_hu": [10.0, 20.0, 40.0],
    "smoothness_weight": [1.0, 3.0],
}


def expand_grid(base: CRFParams, grid: Dict[str, Sequence]) -> List[CRFParams]:
    """Every combination of the grid's values applied to ``base`` (unknown names are an error)."""
    names = list(grid)
    return [CRFParams.from_dict({**base.to_dict(), **dict(zip(names, values))}, source="CRF grid")
            for values in itertools.product(*(grid[name] for name in names))]


def score_case(probabilities: np.ndarray, image: np.ndarray, reference: np.ndarray, spacing: Sequence[float],
               candidates: List[CRFParams], settings: PostprocessingSettings, scheme: LabelScheme,
               lr_axis=None) -> np.ndarray:
    """Dice (kidney, tumor) of one case: row 0 without CRF, then one row per candidate; shape (1 + n, 2)."""
    structures = scheme.structures()
    references = [mask_of(reference, structures[name]) for name in SCORED_STRUCTURES]
    rows = []
    for use_crf, params in [(False, settings.crf_params)] + [(True, c) for c in candidates]:
        labels = postprocess_probabilities(probabilities, image, spacing,
                                           replace(settings, use_crf=use_crf, crf_params=params), lr_axis)
        rows.append([dice(ref, mask_of(labels, structures[name])) for ref, name in zip(references, SCORED_STRUCTURES)])
    return np.asarray(rows)


def summarize(candidates: List[CRFParams], dice_per_case: List[np.ndarray], grid: Dict[str, Sequence]) -> dict:
    """Best parameters by mean Dice over cases and labels, with the table of all grid points."""
    mean = np.mean(np.stack(dice_per_case), axis=0)  # (1 + n, 2)
    best = int(np.argmax(mean[1:].mean(1)))
    table = [{**{name: getattr(c, name) for name in grid},
              "kidney_dice": float(m[0]), "tumor_dice": float(m[1]), "mean_dice": float(m.mean())}
             for c, m in zip(candidates, mean[1:])]
    return {"best": candidates[best], "best_mean_dice": float(mean[1 + best].mean()),
            "without_crf_mean_dice": float(mean[0].mean()), "without_crf": {"kidney_dice": float(mean[0, 0]),
                                                                            "tumor_dice": float(mean[0, 1])},
            "grid_results": table}
