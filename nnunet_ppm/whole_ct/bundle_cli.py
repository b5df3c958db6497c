"""`nnunet_ppm export` and `nnunet_ppm install`: a trained whole-CT pipeline (model + atlases) as one zip.

    nnunet_ppm export -d 501 -tr PPMTrainer -p nnUNetPPMPlans -c 3d_fullres -f 0 --atlases ATLASES -o ppm.zip
    nnunet_ppm install ppm.zip        # on the other machine: into $nnUNet_results, prints the predict-ct command

See :mod:`nnunet_ppm.whole_ct.bundle` for what the zip holds.
"""
import argparse
import os
import shlex
import zipfile
from pathlib import Path

from nnunet_ppm.whole_ct.bundle import export_bundle, install_bundle, predict_ct_command, read_bundle_description


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("-d", required=True, help="dataset name or id of the ROI model")
    parser.add_argument("-tr", default="PPMTrainer", help="trainer (default PPMTrainer)")
    parser.add_argument("-p", default="nnUNetPPMPlans", help="plans (default nnUNetPPMPlans)")
    parser.add_argument("-c", default="3d_fullres", help="configuration (default 3d_fullres)")
    parser.add_argument("-f", nargs="+", default=["0"], help="folds to pack (default 0)")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint of each fold")
    parser.add_argument("--atlases", required=True, help="the atlas folder predict-ct localises with")
    parser.add_argument("-o", required=True, help="zip file to write")


def run_export(args: argparse.Namespace) -> int:
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunet_ppm.dataset_names import dataset_name
    try:
        model = Path(get_output_folder(dataset_name(args.d), args.tr, args.p, args.c))
        description = export_bundle(model, args.f, args.chk, Path(args.atlases), Path(args.o))
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"nnunet_ppm export: {error}")
    print(f"wrote {args.o}: {len(description['files'])} files of {model} (folds {' '.join(args.f)}) and "
          f"{args.atlases}")
    return 0


def add_install_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("bundle", help="zip written by `nnunet_ppm export`")


def run_install(args: argparse.Namespace) -> int:
    results = os.environ.get("nnUNet_results")
    if not results:
        raise SystemExit("nnunet_ppm install: set nnUNet_results (the model goes where nnU-Net looks for it)")
    try:
        installed = install_bundle(Path(args.bundle), Path(results))
        with zipfile.ZipFile(args.bundle) as bundle:
            description = read_bundle_description(bundle, args.bundle)
    except (ValueError, FileNotFoundError, FileExistsError, zipfile.BadZipFile) as error:
        raise SystemExit(f"nnunet_ppm install: {error}")
    print(f"installed {installed['model']} (atlases in {installed['atlases']}); whole CTs with:")
    print("  " + shlex.join(predict_ct_command(description, installed)))
    return 0
