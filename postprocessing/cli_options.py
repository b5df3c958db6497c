"""Command-line options shared by `nnunet_ppm predict`, `postprocess` and `tune-crf`."""
import argparse

from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_ppm.postprocessing.dense_crf import CRF_BACKENDS
from nnunet_ppm.postprocessing.nnunet_pp_pkl import LCC_MODES
from nnunet_ppm.postprocessing.pipeline import PostprocessingSettings


def add_crf_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--crf-backend", choices=sorted(CRF_BACKENDS), default=PostprocessingSettings.crf_backend,
                        help="mean-field implementation of the CRF: torch (default; GPU when present, else one CPU "
                             "thread) or pydensecrf (the reference; one CPU core, slower)")


def add_lcc_mode_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lcc-mode", choices=LCC_MODES, default="largest",
                        help="'largest': keep the largest 18-connected kidney+tumor component (paper; kidney ROIs). "
                             "'per-side': keep the largest component left and right of the patient's midline, the "
                             "centre of the body in the CT (full CTs with two kidneys; --write-pp-pkl, without the "
                             "CT: the image's middle). Default: largest")


def add_postprocessing_arguments(parser: argparse.ArgumentParser) -> None:
    """--no-crf, --no-lcc, --lcc-mode, --crf-params, --crf-backend."""
    group = parser.add_argument_group("post-processing (paper, section II.B)")
    group.add_argument("--no-crf", action="store_true", help="skip the 3D dense CRF")
    group.add_argument("--no-lcc", action="store_true", help="skip the largest-connected-component step")
    add_lcc_mode_argument(group)
    group.add_argument("--crf-params", metavar="JSON", default=None,
                       help="CRF parameters as written by `nnunet_ppm tune-crf` (default: CRFParams defaults)")
    add_crf_backend_argument(group)


def settings_from_args(args: argparse.Namespace) -> PostprocessingSettings:
    """PostprocessingSettings from the options of :func:`add_postprocessing_arguments`."""
    params = CRFParams.from_json(args.crf_params) if args.crf_params else CRFParams()
    return PostprocessingSettings(use_crf=not args.no_crf, use_lcc=not args.no_lcc, lcc_mode=args.lcc_mode,
                                  crf_params=params, crf_backend=args.crf_backend)
