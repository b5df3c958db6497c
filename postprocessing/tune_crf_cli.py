"""`nnunet_ppm tune-crf`: grid-search the CRF parameters on validation predictions; write the best as JSON.

    nnunet_ppm tune-crf -i VAL_PRED -r RAW_IMAGES -ref LABELS -o crf_params.json [--grid GRID.json]

VAL_PRED holds .npz/.pkl per case from ``nnUNetv2_predict --save_probabilities``
(or nnU-Net's validation with ``--npz``) plus its dataset.json and plans.json;
LABELS holds the reference segmentations CASE<ending>. The output JSON is what
``nnunet_ppm predict/postprocess --crf-params`` read; it also records the Dice
of every grid point and of the pipeline without CRF. GRID.json maps CRFParams
field names to lists of values (default: ``crf_tuning.DEFAULT_GRID``). Cost:
cases x grid points CRF runs (about 1-20 s each on one core, by box size).
"""
import argparse
import json
from functools import partial
from typing import List, Tuple

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import isfile, join

from nnunet_ppm.dataset_conversion.case_pool import run_per_case
from nnunet_ppm.evaluation.labels import scheme_from_labels
from nnunet_ppm.postprocessing.cli_options import add_crf_backend_argument, add_lcc_mode_argument
from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_ppm.postprocessing.crf_tuning import DEFAULT_GRID, expand_grid, score_case, summarize
from nnunet_ppm.postprocessing.pipeline import PostprocessingSettings, lr_axis_for, read_case_ct
from nnunet_ppm.postprocessing.prediction_folder import PredictionFolder, raw_image_files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", dest="input_folder", required=True,
                        help="validation predictions with .npz probabilities (nnUNetv2_predict --save_probabilities)")
    parser.add_argument("-r", dest="raw_folder", required=True, help="the raw images of those cases")
    parser.add_argument("-ref", dest="reference_folder", required=True, help="reference segmentations CASE<ending>")
    parser.add_argument("-o", dest="output_json", required=True, help="where the best parameters go (JSON)")
    parser.add_argument("--grid", default=None, help="JSON {CRFParams field: [values]} (default: a small built-in grid)")
    parser.add_argument("--base-params", default=None, help="JSON of CRF parameters the grid starts from")
    parser.add_argument("--no-lcc", action="store_true", help="score without the largest-component step")
    add_lcc_mode_argument(parser)
    add_crf_backend_argument(parser)
    parser.add_argument("-np", dest="num_processes", type=int, default=2, help="cases in parallel. Default: 2")
    parser.add_argument("--disable_progress_bar", action="store_true", help="no tqdm progress bar")


def _score_one(case_id: str, folder: PredictionFolder, raw_folder: str, reference_folder: str,
               candidates: List[CRFParams], settings: PostprocessingSettings) -> np.ndarray:
    probabilities, properties = folder.load_case(case_id)
    reader_writer = folder.reader_writer()
    image = read_case_ct(case_id, probabilities.shape, properties,
                         raw_image_files(raw_folder, case_id, folder.dataset_json), reader_writer)
    reference_file = join(reference_folder, case_id + folder.file_ending)
    if not isfile(reference_file):
        raise FileNotFoundError(f"case {case_id}: reference {reference_file} not found")
    reference = reader_writer.read_seg(reference_file)[0][0]
    if reference.shape != image.shape:
        raise ValueError(f"case {case_id}: reference has shape {reference.shape}, image {image.shape}")
    return score_case(probabilities, image, reference, properties["spacing"], candidates, settings,
                      scheme_from_labels(folder.dataset_json["labels"]), lr_axis_for(case_id, properties, settings))


def run(args: argparse.Namespace) -> int:
    base = CRFParams.from_json(args.base_params) if args.base_params else CRFParams()
    grid = DEFAULT_GRID
    if args.grid:
        with open(args.grid, encoding="utf-8") as f:
            grid = json.load(f)
    candidates = expand_grid(base, grid)
    settings = PostprocessingSettings(use_lcc=not args.no_lcc, lcc_mode=args.lcc_mode, crf_params=base,
                                      crf_backend=args.crf_backend)
    folder = PredictionFolder(args.input_folder)
    case_ids = folder.case_ids()
    print(f"tune-crf: {len(case_ids)} case(s) x {len(candidates)} parameter set(s)")
    score = partial(_score_one, folder=folder, raw_folder=args.raw_folder, reference_folder=args.reference_folder,
                    candidates=candidates, settings=settings)
    dice = run_per_case(score, case_ids, args.num_processes, "tuning CRF", not args.disable_progress_bar)
    summary = summarize(candidates, dice, grid)
    best = summary.pop("best")
    best.to_json(args.output_json, tuning={**summary, "cases": case_ids, "grid": grid,
                                           "lcc": None if args.no_lcc else args.lcc_mode})
    print(f"best mean Dice {summary['best_mean_dice']:.4f} (without CRF {summary['without_crf_mean_dice']:.4f}); "
          f"parameters written to {args.output_json}")
    return 0
