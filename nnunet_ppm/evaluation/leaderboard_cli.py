"""`nnunet_ppm leaderboard`: methods against default nnU-Net, Table I style, from nnU-Net result folders.

    nnunet_ppm leaderboard -d 501                      # cross-validation of every trained method
    nnunet_ppm leaderboard -ref labelsTs -i imagesTs --pred nnUNetTrainer__nnUNetPlans__3d_fullres=predA \\
        PPMTrainer=predB -o leaderboard_test           # test-set predictions
"""
import argparse
import os
from pathlib import Path

from nnunet_ppm.dataset_names import DatasetNotFoundError
from nnunet_ppm.evaluation.cases import file_ending_of, find_dataset_json, named_folder
from nnunet_ppm.evaluation.labels import load_label_scheme
from nnunet_ppm.evaluation.leaderboard import (MARKDOWN, build_leaderboard, evaluate_methods, table_i_markdown,
                                               verdicts, worst_and_best, write_report)
from nnunet_ppm.evaluation.methods import (DEFAULT_NNUNET, cross_validation_methods, dataset_locations,
                                           default_reference, folder_methods)
from nnunet_ppm.evaluation.overlay import overlay_cases
from nnunet_ppm.evaluation.scope import CROSS_VALIDATION, TEST_SET, conversion_record, scope_statement


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-d", "--dataset", help="dataset id or name: compare the cross-validation predictions "
                                                "(fold_N/validation) of every method trained on it")
    source.add_argument("--pred", nargs="+", type=named_folder, metavar="[NAME=]FOLDER",
                        help="test-set prediction folders, one per method (needs -ref)")
    parser.add_argument("-ref", type=Path, help="reference labels of the --pred cases")
    parser.add_argument("-i", "--images", type=Path,
                        help="CT images for the overlays (default with -d: nnUNet_raw/DatasetX/imagesTr)")
    parser.add_argument("-f", "--folds", nargs="+", type=int, help="with -d: only these folds (default: all)")
    parser.add_argument("-o", type=Path, help="output folder (default with -d: nnUNet_results/DatasetX/leaderboard)")
    parser.add_argument("--reference", default=None,
                        help=f"method every other is tested against (default: {DEFAULT_NNUNET}, else the one "
                             f"nnUNetTrainer_* variant on nnUNetPlans 3d_fullres, when present)")
    parser.add_argument("-dj", "--dataset-json", type=Path, default=None, help="dataset.json that names the labels")
    parser.add_argument("-np", "--num-processes", type=int, default=min(4, os.cpu_count() or 1),
                        help="worker processes for the evaluation (default: %(default)s)")
    parser.add_argument("--overlay-cases", type=int, default=2,
                        help="overlays of this many worst and best cases (default: %(default)s; 0: none)")


def run(args: argparse.Namespace) -> int:
    notes = []
    if args.dataset is not None:
        try:
            locations = dataset_locations(args.dataset)
        except (DatasetNotFoundError, FileNotFoundError) as error:
            raise SystemExit(f"nnunet_ppm leaderboard: {error}") from error
        methods, notes = cross_validation_methods(locations.results, args.folds)
        if not methods:
            raise SystemExit(f"nnunet_ppm leaderboard: no cross-validation predictions under {locations.results}"
                             + "".join(f"\n  {note}" for note in notes))
        references, images = locations.references, args.images or locations.images
        dataset_json = args.dataset_json or locations.dataset_json or methods[0].sources[0].parents[1] / "dataset.json"
        output = args.o or locations.results / "leaderboard"
        title = f"Leaderboard {locations.name}, cross-validation"
        notes.insert(0, f"references: {references}")
        file_ending = file_ending_of(references, dataset_json)
        mode, record = CROSS_VALIDATION, conversion_record(dataset_json)
    else:
        if args.ref is None or args.o is None:
            raise SystemExit("nnunet_ppm leaderboard: --pred needs -ref (reference labels) and -o (output folder)")
        references, images, output = args.ref, args.images, args.o
        dataset_json = args.dataset_json or find_dataset_json(*(folder / "dataset.json" for _, folder in args.pred),
                                                              references.parent / "dataset.json")
        file_ending = file_ending_of(args.pred[0][1], dataset_json)
        methods = folder_methods(args.pred, file_ending)
        title = f"Leaderboard, test set {references}"
        # what the references are is recorded beside them (nnUNet_raw/DatasetX/labelsTs), or in the given -dj
        mode, record = TEST_SET, conversion_record(args.dataset_json or references.parent / "dataset.json")
    names = [method.name for method in methods]
    reference = args.reference or default_reference(names)
    if reference is not None and reference not in names:
        raise SystemExit(f"nnunet_ppm leaderboard: --reference {reference!r} is not one of the methods {names}")
    scheme = load_label_scheme(dataset_json)

    results = evaluate_methods(methods, references, file_ending, scheme, output, args.num_processes)
    board = build_leaderboard(results, reference, title, notes)
    board.scope = scope_statement(mode, record, board.case_ids)
    overlays = {}
    if args.overlay_cases > 0 and images is not None:
        worst, best = worst_and_best(board, args.overlay_cases)
        by_name = {method.name: method for method in methods}
        predictions = {row.display: by_name[row.name].predictions for row in board.rows}
        reference_files = {case: references / f"{case}{file_ending}" for case in board.case_ids}
        overlays = overlay_cases([case for case, _ in worst + best], images, reference_files, predictions,
                                 output / "overlays", file_ending, scheme)
    elif args.overlay_cases > 0:
        board.notes.append("no images found (pass -i), so no overlays")
    write_report(board, output, overlays, args.overlay_cases)

    print(f"\n{title}: n = {len(board.case_ids)} cases common to all methods\n{board.scope}\n")
    print(table_i_markdown(board))
    for line in verdicts(board):
        print(line)
    print(f"\nwrote {output / MARKDOWN}")
    return 0
