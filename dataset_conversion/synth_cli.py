"""`nnunet_ppm synth OUT --cases N`: write synthetic CTs (arterial phase unless --phase) with kidney/tumor labels."""
import argparse
import sys

from nnunet_ppm.dataset_conversion.contrast_phases import PHASES
from nnunet_ppm.dataset_conversion.layouts import LAYOUTS
from nnunet_ppm.dataset_conversion.synthesize import PRESETS, synthesize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output folder (created; must not exist unless --overwrite)")
    parser.add_argument("--cases", type=int, default=None,
                        help="number of cases (default 4; with --labels-from: all label files)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; case i depends only on (seed, i)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                        help="tiny: 64x80 in-plane at ~4 mm for CPU tests; small: 192x224 at ~1.7 mm, the demo; "
                             "full: 512x512 at 0.6-0.9 mm (default tiny)")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="roi",
                        help="source layout to write, as `nnunet_ppm convert LAYOUT` reads it (default roi)")
    parser.add_argument("--labels-from", nargs="+", metavar="PATH",
                        help="paint CTs onto these real label maps (files or folders, e.g. kits19-labels/); "
                             "their geometry, spacing and header are kept")
    parser.add_argument("--min-spacing", type=float, default=None, metavar="MM",
                        help="with --labels-from: resample each label map to at least MM per axis first (nearest "
                             "neighbour, header kept): smaller, quicker CTs")
    parser.add_argument("--phase", choices=PHASES, default="arterial",
                        help="contrast phase of the CTs (default arterial, the paper's; values in "
                             "nnunet_ppm.dataset_conversion.contrast_phases)")
    parser.add_argument("--file-ending", default=".nii.gz", choices=(".nii.gz", ".nrrd", ".mha"),
                        help="file format of the roi layout (KiTS layouts are .nii.gz)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("-np", "--num-processes", type=int, default=1, help="worker processes (default 1)")


def run(args: argparse.Namespace) -> int:
    try:
        out = synthesize(args.out, args.cases, args.seed, args.preset, args.layout, args.labels_from,
                         file_ending=args.file_ending, overwrite=args.overwrite, num_processes=args.num_processes,
                         min_spacing_mm=args.min_spacing, phase=args.phase)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"nnunet_ppm synth: {error}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({args.layout} layout, {args.phase} phase)")
    return 0
