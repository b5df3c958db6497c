"""`nnunet_ppm convert {roi,kits19,kits21,kits23} SRC -d ID`: make an nnU-Net raw dataset."""
import argparse
import sys

from nnunet_ppm.dataset_conversion import layouts
from nnunet_ppm.dataset_conversion.convert import ConversionError, convert_dataset

LAYOUT_HELP = {
    "roi": "the paper's layout: SRC/<patient>/image.<ext> (or image/ DICOM series) + label.<ext>; "
           "labels 0 background, 1 kidney, 2 tumor; <ext>: .nii.gz .nii .nrrd .nhdr .mha .mhd",
    "kits19": "KiTS19: SRC/case_XXXXX/imaging.nii.gz + segmentation.nii.gz (or the repository root with data/)",
    "kits21": "KiTS21: SRC/case_XXXXX/imaging.nii.gz + aggregated_MAJ_seg.nii.gz (or the root with data/); "
              "labels kidney, tumor, cyst",
    "kits23": "KiTS23: SRC/case_XXXXX/imaging.nii.gz + segmentation.nii.gz (or the root with dataset/); "
              "labels 1 kidney, 2 tumor, 3 cyst",
}


def _options(parser: argparse.ArgumentParser, layout: str) -> None:
    parser.add_argument("src", help="source folder")
    parser.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset ID")
    parser.add_argument("--name", help="dataset name (default: KidneyTumor / KiTS19 / KiTS21 / KiTS23, +ROI with --roi)")
    parser.add_argument("--raw-dir", help="nnUNet_raw folder (default: $nnUNet_raw)")
    roi = parser.add_argument_group("per-kidney ROIs (paper section II)")
    roi.add_argument("--roi", action="store_true",
                     help="crop one ROI per kidney of the training patients instead of whole CTs (held-out patients "
                          "stay whole CTs), and write nnU-Net's splits_final.json with each patient's ROIs in one "
                          "cross-validation fold (nnUNetv2_plan_and_preprocess copies it to nnUNet_preprocessed)")
    roi.add_argument("--roi-size", default="150",
                     help="in-plane window, voxels or mm: 150, 150x120, 110mm (anterior-posterior x left-right; default 150)")
    roi.add_argument("--roi-margin", default="10mm", help="slices (e.g. 4) or mm (e.g. 10mm) above and below the kidney (default 10mm)")
    roi.add_argument("--keep-healthy", action="store_true", help="also crop kidneys without tumor (default: tumor kidneys only)")
    if layouts.get_layout(layout).has_cyst:
        parser.add_argument("--keep-cyst", action="store_true", help="keep cysts as label 3 (default: merged into kidney)")
    split = parser.add_mutually_exclusive_group()
    held_out = ("held out into imagesTs/labelsTs as whole CTs (also with --roi), drawn from all valid patients "
                "before any ROI selection: the same patients with and without --roi for one --split-seed")
    split.add_argument("--test-cases", type=int, default=0, help=f"number of patients {held_out}")
    split.add_argument("--test-fraction", type=float, help=f"fraction of the patients {held_out}")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out patients (default 0)")
    parser.add_argument("--skip-invalid", action="store_true", help="convert the valid cases and list the invalid ones")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    parser.add_argument("-np", "--num-processes", type=int, default=1, help="worker processes (default 1)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="layout", required=True, metavar="{roi,kits19,kits21,kits23}")
    for layout, help_text in LAYOUT_HELP.items():
        _options(sub.add_parser(layout, help=help_text, description=help_text), layout)


def run(args: argparse.Namespace) -> int:
    try:
        convert_dataset(args.src, args.dataset_id, args.layout, name=args.name, raw_dir=args.raw_dir, roi=args.roi,
                        roi_size=args.roi_size, roi_margin=args.roi_margin, keep_healthy=args.keep_healthy,
                        keep_cyst=getattr(args, "keep_cyst", False), test_cases=args.test_cases,
                        test_fraction=args.test_fraction, split_seed=args.split_seed, skip_invalid=args.skip_invalid,
                        overwrite=args.overwrite, num_processes=args.num_processes)
    except (ConversionError, ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"nnunet_ppm convert: {error}", file=sys.stderr)
        return 1
    return 0
