"""Compare methods case by case against a reference method (default nnU-Net): Table-I-style leaderboard.

Only cases that every method predicted are compared. For every other method
and metric, a paired Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided)
against the reference method over those cases gives the p-value; identical
values in every case give p = 1. The header says whether the numbers are end-to-end on whole CTs or
measured on ROIs cut with the reference labels (optimistic; :mod:`nnunet_ppm.evaluation.scope`).
Besides the paper's Table I it reports KiTS21/23's Surface Dice per structure, with KiTS' tolerances
(:mod:`nnunet_ppm.evaluation.surface_dice`). Outputs (all written atomically):
``leaderboard.md``, ``leaderboard.csv``, ``dice_boxplot.png``, per method
``methods/NAME/{metrics_per_case.csv,summary.json}`` and ``overlays/CASE.png``
for the worst and best cases.
"""
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.stats import wilcoxon

from nnunet_ppm.atomic_io import write_text_atomic
from nnunet_ppm.evaluation.cases import pair_cases
from nnunet_ppm.evaluation.evaluate import (CaseResult, detection_summary, evaluate_pairs, format_rate,
                                             write_evaluation)
from nnunet_ppm.evaluation.labels import STRUCTURE_TITLES, LabelScheme
from nnunet_ppm.evaluation.methods import Method, display_names
from nnunet_ppm.evaluation.surface_dice import KITS_TOLERANCE_SOURCE, tolerance_mm
from nnunet_ppm.plotting import panel_grid, save_figure

TABLE_I_METRICS = ("dice", "mssd_voxels", "mssd_mm", "hd95_mm")
COMPARED_METRICS = TABLE_I_METRICS + ("surface_dice",)
SCORE_METRICS = ("dice", "surface_dice")  # in [0, 1], shown with three decimals
METRIC_TITLES = {"dice": "Dice", "mssd_voxels": "MSSD (vox)", "mssd_mm": "MSSD (mm)", "hd95_mm": "HD95 (mm)",
                 "surface_dice": "Surface Dice"}
TABLE_I_COLUMNS = tuple((structure, metric) for metric in TABLE_I_METRICS for structure in ("kidney", "tumor"))
RANKING_STRUCTURES = ("kidney", "tumor")
MARKDOWN, CSV_FILE, BOXPLOT = "leaderboard.md", "leaderboard.csv", "dice_boxplot.png"


@dataclass
class MethodRow:
    """One method's per-case values over the common cases, its tumor detection and p-values."""

    name: str
    display: str
    n_predicted: int
    values: Dict[Tuple[str, str], np.ndarray]
    detection: Dict[str, Optional[float]]
    p_values: Dict[Tuple[str, str], float] = field(default_factory=dict)


@dataclass
class Leaderboard:
    """Everything the report shows; ``case_ids`` are the cases common to all methods."""

    title: str
    case_ids: List[str]
    structures: List[str]
    rows: List[MethodRow]
    reference: Optional[str]
    notes: List[str]
    scope: Optional[str] = None  # end-to-end on whole CTs or ROIs (optimistic): nnunet_ppm.evaluation.scope

    def row(self, name: str) -> MethodRow:
        return next(row for row in self.rows if row.name == name)


def paired_wilcoxon(values: np.ndarray, reference_values: np.ndarray) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value; 1.0 when every pair is equal."""
    if np.all(values == reference_values):
        return 1.0
    return float(wilcoxon(values, reference_values).pvalue)


def build_leaderboard(results: Mapping[str, Sequence[CaseResult]], reference: Optional[str], title: str,
                      notes: Sequence[str] = ()) -> Leaderboard:
    """Restrict every method to the common cases, then summarise and test against ``reference``.

    Rows: the reference method first, then the others by name.

    Args:
        results: method name -> its evaluated cases (any order, any subset of cases).
        reference: name of the reference method (a key of ``results``) or None for no tests.
        title: heading of the report.
        notes: lines to show under the heading (e.g. folders left out).
    """
    by_case = {name: {r.case_id: r for r in method_results} for name, method_results in results.items()}
    case_ids = sorted(set.intersection(*(set(cases) for cases in by_case.values())))
    if not case_ids:
        raise ValueError("no case was predicted by every method: " +
                         ", ".join(f"{name}: {len(cases)} cases" for name, cases in by_case.items()))
    structures = list(by_case[next(iter(by_case))][case_ids[0]].structures)
    names = display_names(list(results))
    rows = []
    for name, cases in sorted(by_case.items(), key=lambda item: (item[0] != reference, item[0])):
        common = [cases[case_id] for case_id in case_ids]
        values = {(s, m): np.array([getattr(r.structures[s], m) for r in common])
                  for s in structures for m in COMPARED_METRICS}
        rows.append(MethodRow(name, names[name], len(cases), values,
                              detection_summary([r.tumor_detection for r in common])))
    if reference is not None:
        reference_row = next(row for row in rows if row.name == reference)
        for row in rows:
            if row is not reference_row:
                row.p_values = {key: paired_wilcoxon(row.values[key], reference_row.values[key]) for key in row.values}
    return Leaderboard(title, case_ids, structures, rows, reference, list(notes))


def format_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def verdicts(board: Leaderboard) -> List[str]:
    """One line per other method and structure: mean Dice difference to the reference, p-value, n."""
    if board.reference is None:
        return []
    reference = board.row(board.reference)
    lines = []
    for row in board.rows:
        if row is reference:
            continue
        for structure in board.structures:
            key = (structure, "dice")
            difference = row.values[key].mean() - reference.values[key].mean()
            lines.append(f"{row.display} vs {reference.display}: {STRUCTURE_TITLES[structure]} Dice "
                         f"{difference:+.3f}, {format_p(row.p_values[key])}, n={len(board.case_ids)}")
    return lines


def _cell(row: MethodRow, key: Tuple[str, str]) -> str:
    values = row.values[key]
    digits = 3 if key[1] in SCORE_METRICS else 2
    std = values.std(ddof=1) if values.size > 1 else 0.0
    text = f"{values.mean():.{digits}f} ± {std:.{digits}f}"
    return f"{text} ({format_p(row.p_values[key])})" if key in row.p_values else text


def _markdown_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def table_i_markdown(board: Leaderboard) -> str:
    """The paper's Table I, extended: Dice, MSSD (voxels, mm), HD95 of kidney and tumor, detection, n."""
    header = ["Method", "n"] + [f"{METRIC_TITLES[m]} {s}" for s, m in TABLE_I_COLUMNS] + ["Sensitivity",
                                                                                         "Specificity"]
    lines = [[row.display + (" (reference)" if row.name == board.reference else ""), str(len(board.case_ids))]
             + [_cell(row, key) for key in TABLE_I_COLUMNS]
             + [format_rate(row.detection["sensitivity"]), format_rate(row.detection["specificity"])]
             for row in board.rows]
    return _markdown_table(header, lines)


def regions_markdown(board: Leaderboard) -> str:
    """Dice of the composite regions (kidney+tumor; KiTS21/23 kidney+masses and masses where present)."""
    regions = [s for s in board.structures if s not in ("kidney", "tumor")]
    header = ["Method"] + [f"Dice {STRUCTURE_TITLES[s]}" for s in regions]
    return _markdown_table(header, [[row.display] + [_cell(row, (s, "dice")) for s in regions] for row in board.rows])


def surface_dice_markdown(board: Leaderboard) -> str:
    """KiTS21/23 Surface Dice of every structure, mean ± std over cases (p against the reference)."""
    header = ["Method"] + [f"{METRIC_TITLES['surface_dice']} {STRUCTURE_TITLES[s]}" for s in board.structures]
    return _markdown_table(header, [[row.display] + [_cell(row, (s, "surface_dice")) for s in board.structures]
                                    for row in board.rows])


def surface_dice_note(structures: Sequence[str]) -> str:
    """The tolerance each structure's Surface Dice uses, and where the values come from."""
    by_tolerance: Dict[float, List[str]] = {}
    for structure in structures:
        by_tolerance.setdefault(tolerance_mm(structure), []).append(STRUCTURE_TITLES[structure])
    tolerances = "; ".join(f"{', '.join(names)}: {value:.3f} mm" for value, names in by_tolerance.items())
    return (f"Surface Dice as KiTS21/23 compute it (DeepMind surface-distance surface elements), at KiTS' "
            f"tolerances: {tolerances}. KiTS scores kidney+masses (kidney+tumor where the labels have no cyst), "
            f"masses and tumor; the kidney alone, which KiTS does not score, takes KiTS' kidney+masses tolerance. "
            f"Source: {KITS_TOLERANCE_SOURCE}. Both masks empty: 1, exactly one empty: 0.")


def ranked_cases(board: Leaderboard) -> List[Tuple[str, float]]:
    """(case, score) from worst to best; score = mean over methods of the mean kidney and tumor Dice."""
    scores = np.mean([row.values[(s, "dice")] for row in board.rows for s in RANKING_STRUCTURES], axis=0)
    order = np.argsort(scores, kind="stable")
    return [(board.case_ids[i], float(scores[i])) for i in order]


def worst_and_best(board: Leaderboard, count: int) -> Tuple[List[Tuple[str, float]], List[Tuple[str, float]]]:
    """The ``count`` worst and ``count`` best cases, (case, score) each; no case is in both, so with fewer
    than ``2 * count`` cases there are fewer best ones."""
    ranked = ranked_cases(board)
    return ranked[:count], ranked[count:][::-1][:count]


def markdown_report(board: Leaderboard, overlays: Mapping[str, Path], output_folder: Path,
                    overlay_count: int) -> str:
    """The whole leaderboard.md text."""
    predicted = ", ".join(f"{row.display} {row.n_predicted}" for row in board.rows)
    lines = [f"# {board.title}", ""] + ([f"**{board.scope}**", ""] if board.scope else [])
    lines += [f"**n = {len(board.case_ids)} cases common to all methods** (cases predicted: {predicted}).", ""]
    if board.reference is None:
        lines += ["No reference method (default nnU-Net, `nnUNetTrainer__nnUNetPlans__3d_fullres`, or pass "
                  "`--reference`): no p-values.", ""]
    else:
        lines += [f"Reference: {board.row(board.reference).display}. p: two-sided paired Wilcoxon signed-rank "
                  "test against it over the common cases.", ""]
    lines += [f"- {note}" for note in board.notes] + ([""] if board.notes else [])
    lines += ["## Table I: Dice and surface distances (mean ± std over cases)", "", table_i_markdown(board), "",
              "MSSD: symmetric mean surface-to-surface distance. Empty reference and prediction count as "
              "Dice 1 / distance 0, exactly one empty as Dice 0 / distance = image diagonal. Tumor detection "
              "per case: sensitivity TP/(TP+FN), specificity TN/(TN+FP) (n/a: no such cases).", ""]
    if len(board.structures) > 2:
        lines += ["## Composite regions", "", regions_markdown(board), ""]
    lines += ["## Surface Dice (KiTS21/23)", "", surface_dice_markdown(board), "",
              surface_dice_note(board.structures), ""]
    verdict_lines = verdicts(board)
    if verdict_lines:
        lines += ["## Verdict", ""] + [f"- {line}" for line in verdict_lines] + [""]
    lines += ["## Per-case Dice", "", f"![per-case Dice per structure and method]({BOXPLOT})", ""]
    if overlay_count > 0:
        worst, best = worst_and_best(board, overlay_count)
        lines += ["## Worst and best cases", "", "Ranked by the mean kidney and tumor Dice over all methods.", ""]
        for label, cases in (("worst", worst), ("best", best)):
            if not cases:
                continue
            links = [f"[{case}]({overlays[case].relative_to(output_folder).as_posix()}) ({score:.3f})"
                     if case in overlays else f"{case} ({score:.3f})" for case, score in cases]
            lines.append(f"- {label}: {', '.join(links)}")
    lines += ["", "Per-case metrics of each method: `methods/NAME/metrics_per_case.csv`, summaries in "
              "`methods/NAME/summary.json`; this table as CSV: `leaderboard.csv`.", ""]
    return "\n".join(lines)


def csv_report(board: Leaderboard) -> str:
    """leaderboard.csv: one row per method; mean, std and p-value of every structure and metric; detection."""
    keys = [(s, m) for s in board.structures for m in COMPARED_METRICS]
    header = (["method", "n_cases", "is_reference"]
              + [f"{s}_{m}_{stat}" for s, m in keys for stat in ("mean", "std", "p_value")]
              + ["tumor_TP", "tumor_FP", "tumor_FN", "tumor_TN", "tumor_sensitivity", "tumor_specificity"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in board.rows:
        cells = [row.name, len(board.case_ids), int(row.name == board.reference)]
        for key in keys:
            values = row.values[key]
            std = values.std(ddof=1) if values.size > 1 else 0.0
            cells += [f"{values.mean():.6g}", f"{std:.6g}",
                      f"{row.p_values[key]:.6g}" if key in row.p_values else ""]
        detection = row.detection
        cells += [detection[k] for k in ("TP", "FP", "FN", "TN")]
        cells += ["" if detection[k] is None else f"{detection[k]:.6g}" for k in ("sensitivity", "specificity")]
        writer.writerow(cells)
    return buffer.getvalue()


def dice_boxplot(board: Leaderboard, path: Path) -> None:
    """Box plots of per-case Dice, one panel per structure, one box (with the cases as dots) per method."""
    figure, axes = panel_grid(1, len(board.structures), panel_inches=max(2.6, 0.9 * len(board.rows)),
                              panel_aspect=1.1)
    rng = np.random.default_rng(0)
    for ax, structure in zip(axes[0], board.structures):
        data = [row.values[(structure, "dice")] for row in board.rows]
        ax.boxplot(data, showfliers=False)
        for position, values in enumerate(data, start=1):
            ax.plot(position + rng.uniform(-0.12, 0.12, values.size), values, ".", color="tab:blue", alpha=0.5)
        ax.set_xticks(range(1, len(data) + 1), [row.display for row in board.rows], rotation=30, ha="right",
                      fontsize=8)
        ax.set_title(f"Dice {STRUCTURE_TITLES[structure]}", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
    figure.suptitle(f"{board.title}: per-case Dice (n={len(board.case_ids)})", fontsize=11)
    save_figure(figure, path)


def evaluate_methods(methods: Sequence[Method], reference_folder: Path, file_ending: str, scheme: LabelScheme,
                     output_folder: Path, num_processes: int) -> Dict[str, List[CaseResult]]:
    """Evaluate every method's predictions; writes ``methods/NAME/`` evaluation files. Returns name -> results."""
    results = {}
    for method in methods:
        pairs = pair_cases(reference_folder, method.predictions, file_ending)
        results[method.name] = evaluate_pairs(pairs, scheme, num_processes, description=method.name)
        write_evaluation(results[method.name], output_folder / "methods" / method.name, scheme, provenance={
            "reference_folder": str(reference_folder), "prediction_folders": [str(p) for p in method.sources]})
    return results


def write_report(board: Leaderboard, output_folder: Path, overlays: Mapping[str, Path], overlay_count: int) -> str:
    """Write the box plot, CSV and (last) Markdown of a leaderboard; returns the Markdown."""
    dice_boxplot(board, output_folder / BOXPLOT)
    write_text_atomic(output_folder / CSV_FILE, csv_report(board))
    report = markdown_report(board, overlays, output_folder, overlay_count)
    write_text_atomic(output_folder / MARKDOWN, report)
    return report
