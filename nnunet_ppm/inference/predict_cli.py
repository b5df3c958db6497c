"""`nnunet_ppm predict`: nnUNetv2_predict with the paper's post-processing (CRF + largest component) per case.

Takes nnUNetv2_predict's arguments with the same defaults, so that

    nnunet_ppm predict ARGS            ==  nnUNetv2_predict ARGS --save_probabilities
                                           followed by nnunet_ppm postprocess

CRF and largest component are on by default (``--no-crf``, ``--no-lcc``);
``--aggregation vote`` assembles overlapping sub-volumes by majority vote
(over folds x tiles with several folds); ``--paper`` is the paper's whole
inference in one flag (see ``paper_recipe``). With post-processing (or -nps 0)
OUT/case_seconds.json holds the seconds of each step per case that this call
predicted (see ``ppm_predictor``; written at the end, atomically).
"""
import argparse
import dataclasses
import json
import multiprocessing
from pathlib import Path
from typing import Optional

import torch
from batchgenerators.utilities.file_and_folder_operations import join, maybe_mkdir_p
from nnunetv2.utilities.file_path_utilities import get_output_folder

from nnunet_ppm.dataset_names import dataset_name
from nnunet_ppm.inference.paper_recipe import PAPER_HELP, resolve_prediction_arguments
from nnunet_ppm.atomic_io import write_text_atomic
from nnunet_ppm.inference.ppm_predictor import AGGREGATIONS, PPMPredictor, case_seconds_file
from nnunet_ppm.postprocessing.cli_options import add_postprocessing_arguments, settings_from_args
from nnunet_ppm.postprocessing.pipeline import PostprocessingSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", required=True, help="input folder (CASE_0000.nii.gz ...)")
    parser.add_argument("-o", required=True, help="output folder")
    parser.add_argument("-d", required=True, help="dataset name or id")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier. Default: nnUNetPlans")
    parser.add_argument("-tr", default="nnUNetTrainer", help="trainer class. Default: nnUNetTrainer")
    parser.add_argument("-c", required=True, help="configuration")
    parser.add_argument("-f", nargs="+", default=None,
                        help="folds (or all). Default: 0 1 2 3 4; with --paper one fold, by default all (if trained)")
    parser.add_argument("-step_size", type=float, default=0.5, help="sliding-window step (fraction of patch)")
    parser.add_argument("--disable_tta", action="store_true", help="no mirroring at test time")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--save_probabilities", action="store_true",
                        help="also write nnU-Net's .npz probabilities (before CRF) and .pkl properties")
    parser.add_argument("--continue_prediction", action="store_true", help="skip cases already written")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint name")
    parser.add_argument("-npp", type=int, default=3,
                        help="preprocessing processes (0: in the main process). Default: 3")
    parser.add_argument("-nps", type=int, default=3,
                        help="export + post-processing processes (0: in the main process; with -npp 0 no worker "
                             "process at all, for small inputs or debugging). Default: 3")
    parser.add_argument("-prev_stage_predictions", default=None, help="previous stage (cascade)")
    parser.add_argument("-num_parts", type=int, default=1, help="split the cases into this many parts")
    parser.add_argument("-part_id", type=int, default=0, help="which part this call predicts (0-based)")
    parser.add_argument("-device", default="cuda", choices=("cuda", "cpu", "mps"), help="Default: cuda")
    parser.add_argument("--disable_progress_bar", action="store_true")
    parser.add_argument("--not_on_device", action="store_true", help="keep sliding-window results on the CPU")
    parser.add_argument("--aggregation", choices=AGGREGATIONS, default=None,
                        help="'gaussian': nnU-Net's weighted average of overlapping tiles (default); 'vote': the "
                             "paper's majority vote of sub-volumes, counted over folds x tiles with several folds, "
                             "ties to the larger summed probability (CRF then sees the vote fractions)")
    parser.add_argument("--paper", action="store_true", help=PAPER_HELP)
    add_postprocessing_arguments(parser)


def postprocessing_of(args: argparse.Namespace) -> Optional[PostprocessingSettings]:
    """The post-processing the options ask for (None: neither CRF nor largest component); the CRF runs on -device."""
    settings = dataclasses.replace(settings_from_args(args), crf_device=args.device)
    return settings if (settings.use_crf or settings.use_lcc) else None


def _device(name: str) -> torch.device:
    if name == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    elif name == "cuda":
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    return torch.device(name)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.part_id < args.num_parts:
        raise SystemExit(f"nnunet_ppm predict: -part_id must be in 0..{args.num_parts - 1}")
    if args.npp < 0 or args.nps < 0:
        raise SystemExit(f"nnunet_ppm predict: -npp and -nps must be >= 0 (0: in the main process); "
                         f"got -npp {args.npp} -nps {args.nps}")
    try:
        model_folder = get_output_folder(dataset_name(args.d), args.tr, args.p, args.c)
        args = resolve_prediction_arguments(args, Path(model_folder))
    except ValueError as error:
        raise SystemExit(f"nnunet_ppm predict: {error}")
    postprocessing = postprocessing_of(args)
    predictor = PPMPredictor(tile_step_size=args.step_size, use_gaussian=True, use_mirroring=not args.disable_tta,
                             perform_everything_on_device=not args.not_on_device, device=_device(args.device),
                             verbose=args.verbose, verbose_preprocessing=args.verbose,
                             allow_tqdm=not args.disable_progress_bar, aggregation=args.aggregation,
                             postprocessing=postprocessing)
    folds = [f if f == "all" else int(f) for f in args.f]
    predictor.initialize_from_trained_model_folder(model_folder, folds, checkpoint_name=args.chk)
    maybe_mkdir_p(args.o)
    seconds_file = case_seconds_file(args.o, args.part_id, args.num_parts)
    seconds_file.unlink(missing_ok=True)  # an earlier call's; this call's is written when it has finished
    if postprocessing is not None:
        postprocessing.crf_params.to_json(join(args.o, "postprocessing_settings.json"),
                                          use_crf=postprocessing.use_crf, use_lcc=postprocessing.use_lcc,
                                          lcc_mode=postprocessing.lcc_mode, crf_backend=postprocessing.crf_backend,
                                          crf_device=postprocessing.crf_device,
                                          aggregation=args.aggregation, paper=args.paper,
                                          folds=[str(f) for f in folds], test_time_mirroring=not args.disable_tta)
    predictor.predict_from_files(args.i, args.o, save_probabilities=args.save_probabilities,
                                 overwrite=not args.continue_prediction,
                                 num_processes_preprocessing=args.npp,
                                 num_processes_segmentation_export=args.nps,
                                 folder_with_segs_from_prev_stage=args.prev_stage_predictions,
                                 num_parts=args.num_parts, part_id=args.part_id)
    if predictor.case_seconds:
        write_text_atomic(seconds_file, json.dumps(predictor.case_seconds, indent=1) + "\n")
    return 0
