"""`nnunet_ppm`: one command-line entry point with subcommands.

Each subcommand lives in its own module, which provides
``add_arguments(parser)`` and ``run(args) -> int`` (or, for a module serving
two subcommands, ``"module:name"``: ``add_name_arguments`` and ``run_name``). Modules are imported only
when their subcommand runs, so `nnunet_ppm --help` stays fast.
"""
import argparse
import importlib
import sys
from typing import List, Optional

from nnunet_ppm.atomic_io import STORAGE_ERRNOS

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "synth": ("nnunet_ppm.dataset_conversion.synth_cli", "write synthetic arterial-phase CTs with kidney/tumor labels"),
    "convert": ("nnunet_ppm.dataset_conversion.convert_cli",
                "make an nnU-Net raw dataset from the paper's ROI layout or KiTS19/21/23 (optionally per-kidney ROIs)"),
    "plan": ("nnunet_ppm.planning.plan_cli", "write nnUNetPPMPlans.json for a planned dataset and preprocess it"),
    "predict": ("nnunet_ppm.inference.predict_cli",
                "nnUNetv2_predict + the paper's CRF and largest component per case (--aggregation vote|gaussian, --paper)"),
    "postprocess": ("nnunet_ppm.postprocessing.postprocess_cli",
                    "CRF + largest component on nnUNetv2_predict --save_probabilities output; or write a pp pkl"),
    "tune-crf": ("nnunet_ppm.postprocessing.tune_crf_cli",
                 "grid-search CRF parameters on validation probabilities; write the best as JSON"),
    "atlas": ("nnunet_ppm.localization.atlas_build",
              "atlas build: choose representative whole CTs of a dataset and store them as low-resolution atlases"),
    "localize": ("nnunet_ppm.localization.localize_cli",
                 "find the kidneys of whole CTs (atlases, a coarse nnU-Net model, or given boxes); boxes per CT"),
    "predict-ct": ("nnunet_ppm.whole_ct.predict_ct_cli",
                   "whole CTs: localise the kidneys, predict their ROIs with `nnunet_ppm predict`, paste back"),
    "export": ("nnunet_ppm.whole_ct.bundle_cli:export",
               "pack a trained ROI model and its atlases into one zip for predict-ct on another machine"),
    "install": ("nnunet_ppm.whole_ct.bundle_cli:install", "install a zip of `nnunet_ppm export` into nnUNet_results"),
    "evaluate": ("nnunet_ppm.evaluation.evaluate_cli", "Dice, surface distances, KiTS Surface Dice, volumes, tumor detection per case"),
    "leaderboard": ("nnunet_ppm.evaluation.leaderboard_cli", "compare methods against default nnU-Net (Table I style)"),
    "overlay": ("nnunet_ppm.evaluation.overlay_cli", "PNGs of CT slices with reference and predicted outlines"),
    "demo": ("nnunet_ppm.demo", "the whole story on synthetic CTs: generate, convert, plan, train PPM and default "
                                "nnU-Net, predict, leaderboard"),
    "trainer-dir": ("nnunet_ppm.training.trainer_dir_cli", "print the folder to put in nnUNet_extTrainer"),
}


def _print_overview() -> None:
    print("usage: nnunet_ppm SUBCOMMAND [options]   (nnunet_ppm SUBCOMMAND -h for its options)\n")
    print("3D_FCN_PPM (Yang et al., ICPR 2018) for nnU-Net v2. Subcommands:")
    width = max(len(name) for name in SUBCOMMANDS)
    for name, (_, summary) in SUBCOMMANDS.items():
        print(f"  {name.ljust(width)}  {summary}")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        _print_overview()
        return 0
    if argv[0] not in SUBCOMMANDS:
        _print_overview()
        print(f"\nnnunet_ppm: unknown subcommand {argv[0]!r}", file=sys.stderr)
        return 2
    module_name, summary = SUBCOMMANDS[argv[0]]
    module_name, _, variant = module_name.partition(":")  # "module:name": its add_name_arguments / run_name
    module = importlib.import_module(module_name)
    add_arguments, run = ((module.add_arguments, module.run) if not variant else
                          (getattr(module, f"add_{variant}_arguments"), getattr(module, f"run_{variant}")))
    parser = argparse.ArgumentParser(prog=f"nnunet_ppm {argv[0]}", description=summary)
    add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(run(args) or 0)
    except OSError as error:
        if error.errno not in STORAGE_ERRNOS:
            raise
        # a full or read-only output folder: one line naming the file, no traceback
        print(f"nnunet_ppm {argv[0]}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
