"""Choose representative atlases: k-medoids on kidney features of every training case.

Features of a case (from its label map alone): the volume (log ml) and
length along the patient axis (mm) of each kidney, and where the left kidney
sits relative to the right one (left-right distance, front-back and
head-foot offsets, mm). Each feature is standardised over the cases; the N
medoids (PAM: greedy BUILD, then SWAP until no swap lowers the total
distance) are the atlases. Medoids are real cases in the middle of a group
of similar ones; an unusual case (a giant tumor) joins the group of its
nearest medoid, and becomes an atlas only when it is so far from all others
that it is a group of its own. Cases without both kidneys are no candidates.
"""
from typing import Dict, List, Optional, Tuple

import cc3d
import numpy as np
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.orientation import slice_axis
from nnunet_ppm.dataset_conversion.roi import kidney_sides

FEATURES = ("log_volume_right_ml", "log_volume_left_ml", "length_right_mm", "length_left_mm",
            "left_right_distance_mm", "front_back_offset_mm", "head_foot_offset_mm")


def kidney_features(label: sitk.Image) -> Optional[Dict[str, float]]:
    """FEATURES of a label map, or None unless it holds a right and a left kidney."""
    kidneys_map, sides = kidney_sides(label)
    if sorted(sides) != ["left", "right"]:
        return None
    statistics = cc3d.statistics(kidneys_map)
    spacing = label.GetSpacing()[::-1]
    along = slice_axis(label.GetDirection())
    voxel_ml = float(np.prod(spacing)) / 1000.0
    per_side = {}
    for index, side in enumerate(sides):
        centroid = statistics["centroids"][index + 1][::-1]
        bounds = statistics["bounding_boxes"][index + 1][along]
        per_side[side] = (np.log(statistics["voxel_counts"][index + 1] * voxel_ml),
                          (bounds.stop - bounds.start) * spacing[along],
                          np.asarray(label.TransformContinuousIndexToPhysicalPoint([float(c) for c in centroid])))
    (volume_r, length_r, centre_r), (volume_l, length_l, centre_l) = per_side["right"], per_side["left"]
    offset = centre_l - centre_r
    values = (volume_r, volume_l, length_r, length_l, abs(offset[0]), offset[1], offset[2])
    return {name: round(float(value), 4) for name, value in zip(FEATURES, values)}


def standardise(table: np.ndarray) -> np.ndarray:
    """Columns to zero mean and unit standard deviation (constant columns become 0)."""
    spread = table.std(axis=0)
    return (table - table.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def k_medoids(distances: np.ndarray, k: int) -> Tuple[List[int], np.ndarray]:
    """PAM k-medoids on a distance matrix: (medoid indices, index of each item's medoid in that list)."""
    n = len(distances)
    if k >= n:
        return list(range(n)), np.arange(n)
    medoids = [int(np.argmin(distances.sum(axis=1)))]
    while len(medoids) < k:  # BUILD: add the item that lowers the total distance most
        nearest = distances[:, medoids].min(axis=1)
        gains = np.maximum(nearest[None, :] - distances, 0).sum(axis=1)
        gains[medoids] = -1
        medoids.append(int(np.argmax(gains)))
    cost = distances[:, medoids].min(axis=1).sum()
    improved = True
    while improved:  # SWAP: take the best swap of a medoid and another item while it lowers the cost
        improved = False
        best = (cost, None, None)
        for position in range(k):
            for candidate in range(n):
                if candidate in medoids:
                    continue
                trial = medoids[:position] + [candidate] + medoids[position + 1:]
                trial_cost = distances[:, trial].min(axis=1).sum()
                if trial_cost < best[0] - 1e-12:
                    best = (trial_cost, position, candidate)
        if best[1] is not None:
            cost, medoids[best[1]] = best[0], best[2]
            improved = True
    return medoids, np.argmin(distances[:, medoids], axis=1)


def choose_atlases(features: Dict[str, Dict[str, float]], count: int) -> Tuple[List[str], dict]:
    """The `count` most representative cases (sorted by name) and a record of the choice for atlases.json."""
    names = sorted(features)
    if not names:
        raise ValueError("no case with both kidneys to choose atlases from")
    table = np.array([[features[name][f] for f in FEATURES] for name in names], dtype=float)
    scaled = standardise(table)
    distances = np.linalg.norm(scaled[:, None, :] - scaled[None, :, :], axis=-1)
    medoids, assignment = k_medoids(distances, count)
    groups = [{"name": names[m], "represents": sorted(names[i] for i in np.flatnonzero(assignment == g))}
              for g, m in enumerate(medoids)]
    record = {"method": "k-medoids (PAM) on standardised kidney features of every case with both kidneys",
              "features": list(FEATURES),
              "mean_distance_to_medoid": round(float(distances[np.arange(len(names)), np.asarray(medoids)[assignment]].mean()), 4),
              "groups": sorted(groups, key=lambda g: g["name"])}
    return sorted(names[m] for m in medoids), record

