"""`nnunet_ppm localize`: find the kidneys of whole CTs and write their boxes, confidence and time per CT.

    nnunet_ppm localize -i CTS -o boxes.json --atlases atlases/
    nnunet_ppm localize -i CTS -o boxes.json --coarse-model MODEL_FOLDER -device cuda

CTS holds CTs in nnU-Net's naming (CASE_0000.nii.gz), or DICOM studies: every
series under it that is a CT volume is a case named ct_<12 hex digits of its
series UID>, and ``inputs`` maps each to its study and series UIDs and lists
the series skipped, with why (localizers, dose reports, too few slices,
uneven spacing). The JSON has one entry
per CT (``kidneys`` with ``side``, ``kidney_box`` and ``confidence``;
``seconds``; ``confidence``; ``notes``) and can be edited and given back to
``localize`` or ``predict-ct`` with ``--boxes``. A CT without kidneys found is
listed with no kidneys and a note. ``localizer`` records the settings; with
--atlases its ``registration.seed`` (--registration-seed) makes the run
repeatable: the same CTs, atlases and seed give the same JSON apart from
``seconds``, whatever --registration-workers and the number of threads.
"""
import argparse
import json
from typing import List

import torch
from tqdm import tqdm

from nnunet_ppm.atomic_io import write_text_atomic
from nnunet_ppm.localization.localizer import KidneyLocalizer, Localization, read_ct_folder
from nnunet_ppm.localization.localizer_options import add_localizer_arguments, localizer_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("-i", required=True, metavar="CT_DIR",
                        help="folder of whole CTs (CASE_0000.nii.gz ...) or of DICOM studies")
    parser.add_argument("-o", required=True, metavar="OUT_JSON", help="JSON file to write")
    parser.add_argument("-device", default="cpu", choices=("cuda", "cpu", "mps"),
                        help="device of --coarse-model (default cpu)")
    parser.add_argument("--disable_progress_bar", action="store_true")
    add_localizer_arguments(parser)


def localize_all(localizer: KidneyLocalizer, cases, progress: bool = True) -> List[Localization]:
    """Localise every CT, with a progress bar; the localiser's workers are released at the end."""
    try:
        return [localizer.locate(case) for case in tqdm(cases, desc="localising", unit="CT", disable=not progress)]
    finally:
        localizer.close()


def summary_line(localization: Localization) -> str:
    sides = ", ".join(f"{k.side}" + (f" ({k.confidence:.2f})" if k.confidence is not None else "")
                      for k in localization.kidneys) or "no kidney found"
    return f"{localization.case}: {sides}; {localization.seconds:.1f} s"


def run(args: argparse.Namespace) -> int:
    try:
        inputs = read_ct_folder(args.i)
        localizer = localizer_from_args(args, torch.device(args.device))
        localizations = localize_all(localizer, inputs.cases, not args.disable_progress_bar)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"nnunet_ppm localize: {error}")
    report = {"localizer": localizer.describe(), **({"inputs": inputs.describe()} if inputs.describe() else {}),
              "cases": {loc.case: loc.to_json() for loc in localizations}}
    write_text_atomic(args.o, json.dumps(report, indent=1) + "\n")
    print("\n".join(summary_line(loc) for loc in localizations))
    print(f"wrote {args.o}")
    return 0
