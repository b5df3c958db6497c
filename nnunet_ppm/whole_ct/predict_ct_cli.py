"""`nnunet_ppm predict-ct`: kidney and tumor labels for whole CTs, with a model trained on per-kidney ROIs.

    nnunet_ppm predict-ct -i CTS -o OUT -d 502 -c 3d_fullres -tr PPMTrainer -p nnUNetPPMPlans -f 0 \\
        --atlases atlases/ [-device cpu]

1. localise the kidneys of each CT in -i (CASE_0000.nii.gz, or every DICOM series under -i that is a CT
   volume, named ct_<12 hex digits of its series UID>; --atlases, --coarse-model or --boxes);
2. crop one ROI per kidney exactly as `nnunet_ppm convert --roi` cropped the model's training ROIs
   (window and margin from the model's dataset.json, or --roi-size / --roi-margin);
3. predict the ROIs with `nnunet_ppm predict` (every model, prediction and post-processing option
   below is passed on to it; CRF and largest component per ROI by default; --paper for the paper's
   inference: majority vote, no mirroring, CRF + largest component, one model);
4. paste the ROI labels back into the CT's geometry (overlaps: foreground beats background, then
   the nearer kidney's ROI) and write OUT/<case>.nii.gz and OUT/<case>.json (ROIs, volumes in ml
   per side, tumors with their largest diameter, timings; for a DICOM series its study and series
   UIDs), OUT/<case>_report.md and _report.png (volumes, tumors, two axial and two coronal slices
   with outlines; research use only; --no-report skips them); --dicom-seg adds
   OUT/<case>_seg.dcm, a DICOM Segmentation over the source series). With DICOM input,
   OUT/dicom_series.json maps every case id to its UIDs and lists the series skipped, with why
   (localizers, dose reports, too few slices, uneven spacing).

-i is the folder of whole CTs and -o the output folder. -num_parts / -part_id split the CTs;
--continue_prediction skips CTs whose outputs exist; --keep-rois keeps the ROI crops and
predictions in OUT/rois as the model saw them, in its training orientation (with
--save_probabilities, their probabilities too).
"""
import argparse
import functools
import json
from pathlib import Path

import torch
from nnunetv2.utilities.file_path_utilities import get_output_folder

from nnunet_ppm.dataset_names import dataset_name
from nnunet_ppm.inference import predict_cli
from nnunet_ppm.inference.paper_recipe import resolve_prediction_arguments
from nnunet_ppm.atomic_io import write_text_atomic
from nnunet_ppm.localization.localizer import read_ct_folder
from nnunet_ppm.localization.localizer_options import add_localizer_arguments, localizer_from_args
from nnunet_ppm.whole_ct.predict_ct import predict_whole_cts, roi_orientation_of, roi_window_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    predict_cli.add_arguments(parser)
    rois = parser.add_argument_group("ROIs")
    rois.add_argument("--roi-size", default=None,
                      help="in-plane ROI window, e.g. 150 or 110mm (default: the model's training ROIs)")
    rois.add_argument("--roi-margin", default=None,
                      help="slices or mm above and below the kidney, e.g. 10mm (default: the model's training ROIs)")
    rois.add_argument("--keep-rois", action="store_true",
                      help="keep the ROI crops, their predictions and roi_manifest.json in OUT/rois")
    parser.add_argument("--no-report", action="store_true",
                        help="skip OUT/<case>_report.md and .png (volumes per side, tumors and their largest "
                             "diameter, axial and coronal slices with outlines)")
    parser.add_argument("--dicom-seg", action="store_true",
                        help="for CTs read from DICOM, also write OUT/<case>_seg.dcm, a DICOM Segmentation over the "
                             'source series (needs pip install "nnunet-ppm[dicom]")')
    add_localizer_arguments(parser)


def _done(out: Path, case: str) -> bool:
    return (out / f"{case}.json").is_file()


def _volumes_line(report: dict) -> str:
    volumes = "; ".join(f"{side}: " + ", ".join(f"{name} {ml:.1f} ml" for name, ml in per_side.items())
                        for side, per_side in report["volumes_ml"].items())
    return f"{report['case']}: {volumes or 'no kidney found'}"


def _predict_rois(args: argparse.Namespace, images: Path, predictions: Path) -> None:
    """`nnunet_ppm predict` of a folder of ROI crops with predict-ct's model, prediction and post-processing options."""
    predict_cli.run(argparse.Namespace(**{**vars(args), "i": str(images), "o": str(predictions),
                                          "num_parts": 1, "part_id": 0, "continue_prediction": False}))


def run(args: argparse.Namespace) -> int:
    if args.prev_stage_predictions:
        raise SystemExit("nnunet_ppm predict-ct: -prev_stage_predictions (cascades) is not supported for ROI models")
    if not 0 <= args.part_id < args.num_parts:
        raise SystemExit(f"nnunet_ppm predict-ct: -part_id must be in 0..{args.num_parts - 1}")
    out = Path(args.o)
    try:
        model_folder = Path(get_output_folder(dataset_name(args.d), args.tr, args.p, args.c))
        if out.resolve() == Path(args.i).resolve():
            raise ValueError("-o must not be the CT folder -i")
        if not (model_folder / "dataset.json").is_file():
            raise FileNotFoundError(f"no trained model in {model_folder} (check -d, -tr, -p, -c and nnUNet_results)")
        args = resolve_prediction_arguments(args, model_folder)
        window = roi_window_of(model_folder, args.roi_size, args.roi_margin)
        orientation = roi_orientation_of(model_folder)
        dataset_json = json.loads((model_folder / "dataset.json").read_text(encoding="utf-8"))
        inputs = read_ct_folder(Path(args.i))
        if args.dicom_seg:
            if not any(case.dicom for case in inputs.cases):
                raise ValueError(f"--dicom-seg: no DICOM series among the CTs of {args.i}")
            from nnunet_ppm.whole_ct.dicom_seg import require_highdicom
            require_highdicom()  # before any work
        cases = inputs.cases[args.part_id::args.num_parts]
        if inputs.describe():
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out / "dicom_series.json", json.dumps(inputs.describe(), indent=1) + "\n")
            print("\n".join(f"skipped DICOM series in {s.folder}: {s.reason}" for s in inputs.skipped))
        if args.continue_prediction:
            cases = [case for case in cases if not _done(out, case.case_id)]
        localizer = localizer_from_args(args, torch.device(args.device))
        about = {"model": str(model_folder), "folds": [str(f) for f in args.f], "paper": args.paper,
                 "aggregation": args.aggregation, "roi_window": window.describe(), "roi_orientation": orientation,
                 "localizer": localizer.describe()}
        reports = predict_whole_cts(cases, localizer, window, functools.partial(_predict_rois, args), out,
                                    dataset_json["file_ending"], dataset_json["labels"], about, args.keep_rois,
                                    not args.disable_progress_bar, args.dicom_seg, not args.no_report, orientation)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"nnunet_ppm predict-ct: {error}")
    print("\n".join(_volumes_line(report) for report in reports))
    print(f"wrote {len(reports)} CTs to {out}")
    return 0
