"""`nnunet_ppm postprocess`: CRF + largest component on a folder written by `nnUNetv2_predict --save_probabilities`.

    nnunet_ppm postprocess -i PRED -r RAW_IMAGES -o OUT [--no-crf] [--no-lcc] [--crf-params JSON]
    nnunet_ppm postprocess --write-pp-pkl postprocessing.pkl [--lcc-mode per-side --lr-axis 2]

The first form reads each case's .npz probabilities and .pkl properties from
PRED and its CT from RAW_IMAGES, and writes the labels to OUT (atomically,
with dataset.json and plans.json so that nnU-Net's evaluation and
post-processing commands accept OUT). The second writes a pickle for stock
``nnUNetv2_apply_postprocessing -pp_pkl_file`` that applies the component rule only.
"""
import argparse
import os
from typing import Tuple

from batchgenerators.utilities.file_and_folder_operations import join, maybe_mkdir_p, save_json

from nnunet_ppm.dataset_conversion.case_pool import run_per_case
from nnunet_ppm.atomic_io import atomic_output
from nnunet_ppm.postprocessing.cli_options import add_lcc_mode_argument, add_postprocessing_arguments, settings_from_args
from nnunet_ppm.postprocessing.nnunet_pp_pkl import write_postprocessing_pkl
from nnunet_ppm.postprocessing.pipeline import PostprocessingSettings, postprocess_and_write_case
from nnunet_ppm.postprocessing.prediction_folder import PredictionFolder, raw_image_files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", dest="input_folder", help="folder written by nnUNetv2_predict --save_probabilities")
    parser.add_argument("-r", dest="raw_folder", help="the raw images that were predicted (CASE_0000.nii.gz ...)")
    parser.add_argument("-o", dest="output_folder", help="where the post-processed segmentations go (not -i)")
    parser.add_argument("-np", dest="num_processes", type=int, default=2,
                        help="cases processed in parallel (each full CT needs several GB of RAM). Default: 2")
    parser.add_argument("--disable_progress_bar", action="store_true", help="no tqdm progress bar")
    add_postprocessing_arguments(parser)
    pkl = parser.add_argument_group("nnU-Net postprocessing.pkl (component rule only, for nnUNetv2_apply_postprocessing)")
    pkl.add_argument("--write-pp-pkl", metavar="FILE", default=None,
                     help="write FILE for `nnUNetv2_apply_postprocessing -pp_pkl_file FILE` (uses --lcc-mode)")
    pkl.add_argument("--lr-axis", type=int, choices=(0, 1, 2), default=2,
                     help="left-right array axis written into a per-side pkl (2 = x for SimpleITK arrays of "
                          "axial scans with identity direction). Default: 2")


def _postprocess_one(task: Tuple[PredictionFolder, str, str, str, PostprocessingSettings]) -> None:
    folder, case_id, raw_folder, output_folder, settings = task
    probabilities, properties = folder.load_case(case_id)
    postprocess_and_write_case(case_id, probabilities, properties,
                               raw_image_files(raw_folder, case_id, folder.dataset_json),
                               join(output_folder, case_id + folder.file_ending), folder.reader_writer(), settings)


def run(args: argparse.Namespace) -> int:
    if args.write_pp_pkl:
        write_postprocessing_pkl(args.write_pp_pkl, args.lcc_mode, args.lr_axis)
        print(f"wrote {args.write_pp_pkl} ({args.lcc_mode} component rule)")
        if args.input_folder is None:
            return 0
    if not (args.input_folder and args.raw_folder and args.output_folder):
        raise SystemExit("nnunet_ppm postprocess: -i, -r and -o are required (or only --write-pp-pkl FILE)")
    if os.path.realpath(args.output_folder) == os.path.realpath(args.input_folder):
        raise SystemExit("nnunet_ppm postprocess: -o must differ from -i (the input predictions are never overwritten)")
    settings = settings_from_args(args)
    folder = PredictionFolder(args.input_folder)
    case_ids = folder.case_ids()
    maybe_mkdir_p(args.output_folder)
    for name, content in (("dataset.json", folder.dataset_json), ("plans.json", folder.plans)):
        with atomic_output(join(args.output_folder, name)) as temporary:
            save_json(content, str(temporary), sort_keys=False)
    tasks = [(folder, case_id, args.raw_folder, args.output_folder, settings) for case_id in case_ids]
    run_per_case(_postprocess_one, tasks, args.num_processes, "post-processing", not args.disable_progress_bar)
    print(f"post-processed {len(case_ids)} case(s) into {args.output_folder}")
    return 0
