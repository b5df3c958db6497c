"""`--paper`: the paper's inference (Yang et al., section II.B) as one flag of `nnunet_ppm predict` and `predict-ct`.

    --paper  ==  --aggregation vote --disable_tta (CRF and largest component on) -f <one model>

* majority vote of the overlapping sub-volumes: nnU-Net's sliding-window tiles, whose size is the
  plans' patch (64 slices in nnUNetPPMPlans, the paper's sub-volumes), at the -step_size overlap;
* no test-time mirroring (the paper mentions none);
* the 3D dense CRF, then the largest 18-connected kidney + tumor component (``--lcc-mode largest``);
* one network, as the paper trained one on all its training patients: the one fold named with -f,
  else fold ``all`` when the model folder holds ``fold_all/<checkpoint>`` (``nnUNetv2_train ... all``).

Flags that contradict it (``--aggregation gaussian``, ``--no-crf``, ``--no-lcc``, ``--lcc-mode per-side``,
several folds) are errors, not silently overridden. The CRF parameters (``--crf-params``), the step size
and everything else stay as given.
"""
import argparse
from pathlib import Path
from typing import List, Optional, Sequence

DEFAULT_FOLDS = ("0", "1", "2", "3", "4")  # nnUNetv2_predict's default
DEFAULT_AGGREGATION = "gaussian"

PAPER_HELP = ("the paper's inference: majority vote of the sub-volumes (--aggregation vote; the tiles are the plans' "
              "patch, 64 slices in nnUNetPPMPlans), no test-time mirroring (--disable_tta), CRF + largest component, "
              "one model: the one fold given with -f, else fold 'all' when the model folder has "
              "fold_all/<checkpoint>. Conflicting flags (--aggregation gaussian, --no-crf, --no-lcc, --lcc-mode "
              "per-side, several folds) are errors")


def paper_folds(model_folder: Path, folds_given: Optional[Sequence[str]], checkpoint: str) -> List[str]:
    """--paper's one model: the one fold given with -f, else ``all`` if ``fold_all/<checkpoint>`` exists.

    Raises:
        ValueError: several folds given, or none given and no fold_all checkpoint.
    """
    if folds_given:
        if len(folds_given) != 1:
            raise ValueError(f"--paper predicts with one model, as the paper did: give one fold with -f "
                             f"(e.g. -f all or -f 0), not -f {' '.join(map(str, folds_given))}")
        return [str(folds_given[0])]
    checkpoint_all = Path(model_folder) / "fold_all" / checkpoint
    if checkpoint_all.is_file():
        return ["all"]
    raise ValueError(f"--paper predicts with one model, fold 'all' by default (the paper trained on all its "
                     f"training patients), but {checkpoint_all} does not exist: train it "
                     f"(nnUNetv2_train DATASET CONFIGURATION all -tr TRAINER -p PLANS) or name one fold with -f")


def _paper_conflicts(args: argparse.Namespace) -> List[str]:
    conflicts = []
    if args.aggregation not in (None, "vote"):
        conflicts.append(f"--aggregation {args.aggregation}")
    conflicts += [flag for flag, given in (("--no-crf", args.no_crf), ("--no-lcc", args.no_lcc)) if given]
    if args.lcc_mode != "largest":
        conflicts.append(f"--lcc-mode {args.lcc_mode}")
    return conflicts


def resolve_prediction_arguments(args: argparse.Namespace, model_folder: Path) -> argparse.Namespace:
    """A copy of `args` with folds (-f), aggregation and test-time mirroring settled.

    With ``args.paper`` these are the paper's (see module doc); without, the defaults where not given.
    Resolving an already resolved namespace gives it back unchanged.

    Raises:
        ValueError: --paper with a conflicting flag, or without a fold to use (see ``paper_folds``).
    """
    resolved = argparse.Namespace(**vars(args))
    if not args.paper:
        resolved.f = list(args.f or DEFAULT_FOLDS)
        resolved.aggregation = args.aggregation or DEFAULT_AGGREGATION
        return resolved
    conflicts = _paper_conflicts(args)
    if conflicts:
        raise ValueError(f"--paper sets the paper's inference (majority vote, CRF and largest component); it "
                         f"cannot be combined with {', '.join(conflicts)}")
    resolved.f = paper_folds(model_folder, args.f, args.chk)
    resolved.aggregation = "vote"
    resolved.disable_tta = True
    return resolved
