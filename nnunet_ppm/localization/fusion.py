"""Fuse the kidney masks of several registered atlases: majority vote, the atlases that agree, and how much.

Input: one side-coded array per atlas (:data:`~.atlas_set.SIDE_CODES`) on the
CT's low-resolution grid. Per voxel the label with most votes wins (majority
vote over background, right and left kidney; a tie goes to background). Per
side:

* **seed**: the majority-vote kidney. When no voxel has a majority but at
  least MIN_AGREEING atlases overlap somewhere, the voxels with the most votes
  for that side are the seed instead (a *weak* consensus, reported as such);
  otherwise the kidney is not found.
* **supporters**: the atlases whose kidney of that side touches the seed.
* **region**: the voxels where at least MIN_AGREEING supporters put that
  kidney. Majority voting shrinks a kidney where the atlases disagree about
  its extent (a long kidney is covered by each atlas in a different part), so
  the kidney's box is taken from the region; atlases that put the kidney
  elsewhere (failed registrations) do not count, and no single atlas can
  stretch the box on its own.
* **confidence**: atlas agreement, the mean Dice between each atlas's kidney
  and the majority-vote kidney over *all* atlases (1: all atlases agree
  exactly; 0: no majority).
"""
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from nnunet_ppm.localization.atlas_set import SIDE_CODES

MIN_AGREEING = 2


@dataclass
class FusedKidney:
    """One kidney found by the atlases (arrays on the CT's low-resolution grid, z y x)."""

    side: str
    majority: np.ndarray  # bool: majority-vote kidney (may be empty when `weak`)
    region: np.ndarray  # bool: where at least MIN_AGREEING supporting atlases put the kidney
    supporters: int
    confidence: float
    weak: bool


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays (0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else 0.0


def majority_vote(warped: Sequence[np.ndarray]) -> np.ndarray:
    """Per voxel the code with most votes among background (0) and SIDE_CODES; ties go to the lower code."""
    codes = [0] + sorted(SIDE_CODES.values())
    votes = np.stack([sum((w == code).astype(np.int16) for w in warped) for code in codes])
    return np.asarray(codes, np.uint8)[np.argmax(votes, axis=0)]


def fuse_kidneys(warped: Sequence[np.ndarray]) -> List[FusedKidney]:
    """The kidneys the atlases agree on, right before left (see the module docstring for the rules)."""
    if not warped:
        return []
    fused = majority_vote(warped)
    kidneys = []
    for side, code in SIDE_CODES.items():
        masks = [w == code for w in warped]
        majority = fused == code
        seed, weak = majority, False
        if not seed.any():
            votes = sum(mask.astype(np.int16) for mask in masks)
            if votes.max() < MIN_AGREEING:
                continue
            seed, weak = votes == votes.max(), True
        supporting = [mask for mask in masks if np.logical_and(mask, seed).any()]
        region = sum(mask.astype(np.int16) for mask in supporting) >= min(MIN_AGREEING, len(supporting))
        confidence = float(np.mean([dice(mask, majority) for mask in masks]))
        kidneys.append(FusedKidney(side, majority, region, len(supporting), confidence, weak))
    return kidneys
