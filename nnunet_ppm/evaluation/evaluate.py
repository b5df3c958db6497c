"""Evaluate predicted label maps against references: per-case CSV and summary JSON."""
import csv
import io
import json
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from nnunet_ppm.atomic_io import write_text_atomic
from nnunet_ppm.evaluation.cases import (CasePair, check_label_values, check_same_geometry, read_label_volume)
from nnunet_ppm.evaluation.labels import LabelScheme
from nnunet_ppm.evaluation.metrics import DETECTION_OUTCOMES, METRIC_NAMES, StructureMetrics, case_metrics
from nnunet_ppm.evaluation.surface_dice import KITS_TOLERANCE_SOURCE, surface_dice_tolerances

CASES_CSV = "metrics_per_case.csv"
SUMMARY_JSON = "summary.json"
RULES = {
    "dice": "2|R&P|/(|R|+|P|); 1 when both are empty",
    "mssd": "mean over both surfaces of the distance to the other surface (voxels and mm); "
            "0 when both are empty, the image diagonal when exactly one is empty",
    "hd95_mm": "max of the two directed 95th percentiles of surface distances; same empty rules as mssd",
    "volume_difference_ml": "prediction - reference",
    "surface_dice": "KiTS21/23 Surface Dice: area of the surface elements (DeepMind surface-distance) of each mask "
                    "within the structure's tolerance (surface_dice_tolerance_mm) of the other mask's surface, over "
                    "the total area; 1 when both are empty, 0 when exactly one is. Tolerances: " + KITS_TOLERANCE_SOURCE
                    + "; kidney alone and kidney+tumor take KiTS' kidney+masses tolerance",
    "tumor_detection": "TP: reference tumor overlapped by predicted tumor; FN: reference tumor not overlapped; "
                       "FP: predicted tumor where the reference has none; TN: neither",
    "sensitivity": "TP/(TP+FN), null when no case has a reference tumor",
    "specificity": "TN/(TN+FP), null when every case has a reference tumor",
    "std": "sample standard deviation (ddof=1), 0 for a single case",
}


@dataclass(frozen=True)
class CaseResult:
    """Metrics of one case: per structure, and its tumor detection outcome."""

    case_id: str
    structures: Dict[str, StructureMetrics]
    tumor_detection: str


def evaluate_case(pair: CasePair, scheme: LabelScheme) -> CaseResult:
    """Read one reference/prediction pair, check it, and compute all its metrics."""
    reference, prediction = read_label_volume(pair.reference), read_label_volume(pair.prediction)
    check_same_geometry(pair.case_id, reference, prediction)
    check_label_values(pair.case_id, f"reference {pair.reference}", reference.array, scheme.allowed_values)
    check_label_values(pair.case_id, f"prediction {pair.prediction}", prediction.array, scheme.allowed_values)
    structures, detection = case_metrics(reference.array, prediction.array, reference.spacing,
                                         scheme.structures(), tumor_values=(scheme.tumor,))
    return CaseResult(pair.case_id, structures, detection)


def _evaluate_case_star(arguments) -> CaseResult:
    return evaluate_case(*arguments)


def evaluate_pairs(pairs: Sequence[CasePair], scheme: LabelScheme, num_processes: int = 1,
                   description: str = "evaluating") -> List[CaseResult]:
    """Evaluate every pair (in ``num_processes`` worker processes), in the order given, with a progress bar."""
    jobs = [(pair, scheme) for pair in pairs]
    progress = dict(total=len(jobs), desc=description, unit="case")
    if num_processes <= 1 or len(jobs) <= 1:
        return [evaluate_case(*job) for job in tqdm(jobs, **progress)]
    with Pool(min(num_processes, len(jobs))) as pool:
        return list(tqdm(pool.imap(_evaluate_case_star, jobs), **progress))


def summary_statistics(values: Sequence[float]) -> Dict[str, float]:
    """mean, std (ddof=1; 0 for one value), median, min, max of a non-empty sequence."""
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if array.size > 1 else 0.0,
            "median": float(np.median(array)), "min": float(array.min()), "max": float(array.max())}


def detection_summary(outcomes: Sequence[str]) -> Dict[str, Optional[float]]:
    """Counts of TP/FP/FN/TN and the set's sensitivity and specificity (None where undefined)."""
    counts = {outcome: sum(1 for o in outcomes if o == outcome) for outcome in DETECTION_OUTCOMES}
    positives, negatives = counts["TP"] + counts["FN"], counts["TN"] + counts["FP"]
    return {**counts, "sensitivity": counts["TP"] / positives if positives else None,
            "specificity": counts["TN"] / negatives if negatives else None}


def format_rate(value: Optional[float]) -> str:
    """A sensitivity/specificity for people: three decimals, 'n/a' where undefined (None)."""
    return "n/a" if value is None else f"{value:.3f}"


def summarise(results: Sequence[CaseResult]) -> Dict:
    """Per structure and metric statistics over the cases, plus the tumor detection summary."""
    if not results:
        raise ValueError("no cases to summarise")
    structures = {name: {metric: summary_statistics([getattr(r.structures[name], metric) for r in results])
                         for metric in METRIC_NAMES}
                  for name in results[0].structures}
    return {"n_cases": len(results), "structures": structures,
            "tumor_detection": detection_summary([r.tumor_detection for r in results])}


def cases_csv_text(results: Sequence[CaseResult]) -> str:
    """The per-case table: one row per case, a column per structure and metric, then the detection outcome."""
    structure_names = list(results[0].structures) if results else []
    header = ["case"] + [f"{s}_{m}" for s in structure_names for m in METRIC_NAMES] + ["tumor_detection"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for result in results:
        values = [f"{getattr(result.structures[s], m):.6g}" for s in structure_names for m in METRIC_NAMES]
        writer.writerow([result.case_id] + values + [result.tumor_detection])
    return buffer.getvalue()


def write_evaluation(results: Sequence[CaseResult], output_folder: Path, scheme: LabelScheme,
                     provenance: Dict) -> Dict:
    """Write ``metrics_per_case.csv`` and then ``summary.json`` (atomically) into ``output_folder``.

    ``provenance`` (folders, dataset.json, missing cases, ...) is stored in the summary as given.
    Returns the summary.
    """
    labels = {"kidney": scheme.kidney, "tumor": scheme.tumor, "cyst": scheme.cyst}
    summary = {**provenance, "labels": labels, **summarise(results),
               "surface_dice_tolerance_mm": surface_dice_tolerances(scheme.structures()), "rules": RULES}
    write_text_atomic(output_folder / CASES_CSV, cases_csv_text(results))
    write_text_atomic(output_folder / SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    return summary
