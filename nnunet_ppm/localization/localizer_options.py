"""Command-line options that choose and set up a kidney localiser (shared by `localize` and `predict-ct`)."""
import argparse
import os

import torch

from nnunet_ppm.localization.kidney_mass import DEFAULT_SEARCH_MM
from nnunet_ppm.localization.localizer import KidneyLocalizer
from nnunet_ppm.localization.registration import RegistrationSettings

DEFAULT_ITERATIONS = RegistrationSettings().affine_iterations
DEFAULT_SEED = RegistrationSettings().seed


def add_localizer_arguments(parser: argparse.ArgumentParser) -> None:
    """--atlases | --coarse-model | --boxes, and their settings."""
    group = parser.add_argument_group("kidney localisation (exactly one of --atlases, --coarse-model, --boxes)")
    choice = group.add_mutually_exclusive_group(required=True)
    choice.add_argument("--atlases", metavar="ATLAS_DIR",
                        help="multi-atlas registration (the paper's way) with the atlases of `nnunet_ppm atlas build`")
    choice.add_argument("--coarse-model", metavar="MODEL_FOLDER",
                        help="a trained nnU-Net model folder that segments whole CTs (e.g. "
                             "nnUNet_results/DatasetXXX/nnUNetTrainer__nnUNetPlans__3d_lowres)")
    choice.add_argument("--boxes", metavar="JSON", help="kidney boxes per CT, as `nnunet_ppm localize` writes them")
    group.add_argument("--registration-iterations", type=int, default=DEFAULT_ITERATIONS,
                       help=f"affine iterations per resolution level (--atlases; default {DEFAULT_ITERATIONS})")
    group.add_argument("--deformable", action="store_true", help="add B-spline refinement (--atlases)")
    group.add_argument("--registration-seed", type=int, default=DEFAULT_SEED, metavar="SEED",
                       help="seeds the registration metric's random sampling; the same seed gives the same boxes "
                            f"(--atlases; default {DEFAULT_SEED})")
    group.add_argument("--registration-workers", type=int, default=None, metavar="N",
                       help="worker processes registering atlases at once, one thread each; does not change the "
                            "boxes (--atlases; default: one per CPU core)")
    group.add_argument("--mass-search", type=float, default=DEFAULT_SEARCH_MM, metavar="MM",
                       help="take each kidney's box from its enhancing kidney + tumor mass in the CT, found up to "
                            f"this far beyond the atlas box (--atlases; default {DEFAULT_SEARCH_MM:g}; 0: boxes from "
                            "the atlases only)")
    group.add_argument("--coarse-folds", nargs="+", default=["0"], help="folds of --coarse-model (default 0)")
    group.add_argument("--coarse-checkpoint", default="checkpoint_final.pth", help="checkpoint of --coarse-model")
    group.add_argument("--kidney-margin", type=float, default=0.0, metavar="MM",
                       help="grow every kidney box by this much before the ROI window is applied (default 0; "
                            "--atlases adds its own margins, docs/whole_ct.md)")


def localizer_from_args(args: argparse.Namespace, device: torch.device) -> KidneyLocalizer:
    """The localiser the options of :func:`add_localizer_arguments` ask for."""
    if args.atlases:
        from nnunet_ppm.localization.atlas_localizer import AtlasLocalizer
        from nnunet_ppm.localization.atlas_set import load_atlases
        settings = RegistrationSettings(affine_iterations=args.registration_iterations, deformable=args.deformable,
                                        seed=args.registration_seed)
        workers = args.registration_workers or os.cpu_count() or 1
        return AtlasLocalizer(load_atlases(args.atlases), settings, args.kidney_margin, args.mass_search, workers)
    margin = args.kidney_margin
    if args.coarse_model:
        from nnunet_ppm.localization.nnunet_localizer import NnunetLocalizer
        folds = [f if f == "all" else int(f) for f in args.coarse_folds]
        return NnunetLocalizer(args.coarse_model, folds, args.coarse_checkpoint, device, margin)
    from nnunet_ppm.localization.boxes_localizer import BoxesLocalizer
    return BoxesLocalizer(args.boxes, margin)
