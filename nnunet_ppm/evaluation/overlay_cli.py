"""`nnunet_ppm overlay`: PNGs of representative slices per case with reference and predicted outlines."""
import argparse
from pathlib import Path

from nnunet_ppm.evaluation.cases import file_ending_of, find_dataset_json, list_cases, named_folder
from nnunet_ppm.evaluation.labels import load_label_scheme
from nnunet_ppm.evaluation.overlay import DEFAULT_ZOOM_MARGIN_MM, overlay_cases


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--images", required=True, type=Path,
                        help="folder of CT images (nnU-Net's CASE_0000.nii.gz or CASE.nii.gz)")
    parser.add_argument("-ref", required=True, type=Path, help="folder of reference label maps")
    parser.add_argument("--pred", nargs="*", type=named_folder, default=[], metavar="[NAME=]FOLDER",
                        help="predicted label maps, one column each (NAME defaults to the folder name)")
    parser.add_argument("-o", required=True, type=Path, help="output folder for CASE.png")
    parser.add_argument("--cases", nargs="*", default=None,
                        help="case ids (default: every case that all --pred folders and -ref have)")
    parser.add_argument("--slices", type=int, default=3, help="axial slices per case (default: %(default)s)")
    parser.add_argument("--margin-mm", type=float, default=DEFAULT_ZOOM_MARGIN_MM,
                        help="zoom to the labelled region plus this margin (default: %(default)s mm)")
    parser.add_argument("--full-slice", action="store_true", help="show whole slices instead of zooming")
    parser.add_argument("-dj", "--dataset-json", type=Path, default=None,
                        help="dataset.json that names the labels (default: beside -ref; else 1 kidney, 2 tumor)")


def run(args: argparse.Namespace) -> int:
    dataset_json = args.dataset_json or find_dataset_json(args.ref.parent / "dataset.json", args.ref / "dataset.json")
    scheme = load_label_scheme(dataset_json)
    file_ending = file_ending_of(args.ref, dataset_json)
    references = list_cases(args.ref, file_ending)
    predictions = {name: list_cases(folder, file_ending) for name, folder in args.pred}
    available = set(references).intersection(*predictions.values())
    case_ids = sorted(available) if args.cases is None else args.cases
    missing = sorted(set(case_ids) - available)
    if missing:
        raise SystemExit(f"nnunet_ppm overlay: no reference or prediction {file_ending} for case(s) {missing}")
    written = overlay_cases(case_ids, args.images, references, predictions, args.o, file_ending, scheme,
                            args.slices, None if args.full_slice else args.margin_mm)
    print(f"wrote {len(written)} overlay(s) to {args.o}")
    return 0
