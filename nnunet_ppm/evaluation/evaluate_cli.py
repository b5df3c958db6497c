"""`nnunet_ppm evaluate`: metrics of a folder of predictions against a folder of references."""
import argparse
import os
import sys
from pathlib import Path

from nnunet_ppm.evaluation.cases import file_ending_of, find_dataset_json, list_cases, pair_cases
from nnunet_ppm.evaluation.evaluate import CASES_CSV, SUMMARY_JSON, evaluate_pairs, format_rate, write_evaluation
from nnunet_ppm.evaluation.labels import STRUCTURE_TITLES, load_label_scheme


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-ref", required=True, type=Path, help="folder of reference label maps")
    parser.add_argument("-pred", required=True, type=Path, help="folder of predicted label maps (same file names)")
    parser.add_argument("-o", required=True, type=Path, help=f"output folder for {CASES_CSV} and {SUMMARY_JSON}")
    parser.add_argument("-dj", "--dataset-json", type=Path, default=None,
                        help="dataset.json that names the labels (default: the one in -pred, else beside -ref; "
                             "without any, 1 = kidney, 2 = tumor)")
    parser.add_argument("-np", "--num-processes", type=int, default=min(4, os.cpu_count() or 1),
                        help="worker processes (default: %(default)s)")
    parser.epilog = ("Metric definitions and the rules for empty masks: see summary.json 'rules' and "
                     "nnunet_ppm.evaluation.metrics; the KiTS Surface Dice tolerances: "
                     "nnunet_ppm.evaluation.surface_dice.")


def run(args: argparse.Namespace) -> int:
    if args.o.resolve() in (args.pred.resolve(), args.ref.resolve()):
        raise SystemExit("nnunet_ppm evaluate: -o must be a folder of its own, not -ref or -pred "
                         "(nnU-Net keeps its own summary.json in prediction folders)")
    dataset_json = args.dataset_json or find_dataset_json(args.pred / "dataset.json", args.ref.parent / "dataset.json",
                                                          args.ref / "dataset.json")
    scheme = load_label_scheme(dataset_json)
    file_ending = file_ending_of(args.pred, dataset_json)
    predictions = list_cases(args.pred, file_ending)
    if not predictions:
        print(f"nnunet_ppm evaluate: no {file_ending} files in {args.pred}", file=sys.stderr)
        return 1
    pairs = pair_cases(args.ref, predictions, file_ending)
    unpredicted = sorted(set(list_cases(args.ref, file_ending)) - set(predictions))
    if unpredicted:
        print(f"note: {len(unpredicted)} reference case(s) have no prediction and are not evaluated", file=sys.stderr)
    results = evaluate_pairs(pairs, scheme, args.num_processes)
    summary = write_evaluation(results, args.o, scheme, provenance={
        "reference_folder": str(args.ref.resolve()), "prediction_folder": str(args.pred.resolve()),
        "dataset_json": str(dataset_json.resolve()) if dataset_json else None,
        "cases_without_prediction": unpredicted})
    print(format_summary(summary))
    print(f"wrote {args.o / CASES_CSV} and {args.o / SUMMARY_JSON}")
    return 0


def format_summary(summary: dict) -> str:
    """A few lines for the terminal: per structure Dice, MSSD, HD95 and Surface Dice, then tumor detection."""
    lines = [f"{summary['n_cases']} cases"]
    for name, metrics in summary["structures"].items():
        dice, mssd_vox, mssd_mm, hd95, surface = (metrics[m] for m in ("dice", "mssd_voxels", "mssd_mm", "hd95_mm",
                                                                      "surface_dice"))
        lines.append(f"  {STRUCTURE_TITLES[name]:<14} Dice {dice['mean']:.3f} +- {dice['std']:.3f}   "
                     f"MSSD {mssd_vox['mean']:.2f} vox / {mssd_mm['mean']:.2f} mm   HD95 {hd95['mean']:.2f} mm   "
                     f"Surface Dice {surface['mean']:.3f} "
                     f"(at {summary['surface_dice_tolerance_mm'][name]:.3f} mm)")
    detection = summary["tumor_detection"]
    lines.append(f"  tumor detection: TP {detection['TP']} FP {detection['FP']} FN {detection['FN']} "
                 f"TN {detection['TN']}  sensitivity {format_rate(detection['sensitivity'])} "
                 f"specificity {format_rate(detection['specificity'])}")
    return "\n".join(lines)

