"""Benchmark: whole-CT segmentation on CTs painted onto real KiTS19 label maps: localisation, ROI recall, predict-ct.

    python benchmarks/whole_ct.py                          # 8 atlases, 20 other CTs, painted at >= 2 mm
    python benchmarks/whole_ct.py --cases 40 --spacing 1.5 --work /tmp/whole_ct --record
    python benchmarks/whole_ct.py --registration-seeds 0 1 2 --predict-cases 0 --work /tmp/whole_ct --record
    python benchmarks/whole_ct.py --phase venous --orientation RAS --predict-cases 0 --work /tmp/whole_ct --record
    python benchmarks/whole_ct.py --cases 3 --predict-cases 3 --against-nnunet --work /tmp/whole_ct --record

Steps, all under --work (a temporary folder by default; what an earlier run left there is reused):

1. paint synthetic CTs onto copies of real KiTS19 label maps (../shared/data/kits19-labels) resampled
   to at least --spacing mm per axis: --atlas-cases of them (seed 0) for the atlases and the ROI
   model, --cases *other* label maps (seed 1) as the CTs to segment, in contrast phase --phase
   (arterial, venous or non-contrast: dataset_conversion/contrast_phases.py; the atlas CTs are always
   arterial), stored in orientation --orientation (sitk.DICOMOrient's code; default as painted);
2. `nnunet_ppm atlas build` from the first group converted as whole CTs;
3. an ROI model: the first group converted with `--roi --roi-size 110mm` (the paper's 150 voxels at
   ~0.74 mm), planned by nnU-Net and `nnunet_ppm plan`, trained with PPMTrainer_debug. A plumbing
   budget: its labels mean nothing, but its time per ROI is that of the PPM network at this spacing;
4. `nnunet_ppm localize --atlases [--mass-search] --registration-seed S` on the --cases CTs, once per
   seed S of --registration-seeds: seconds per CT, and the recall figure: the fraction of reference
   kidneys found whose ROI (the model's window around the kidney box, as predict-ct crops it) holds
   >= 99% of their kidney + tumor voxels (:mod:`nnunet_ppm.whole_ct.recall`). Over several seeds:
   per kidney the smallest and the median share over the seeds, and how many kidneys are held in
   every seed (registration is deterministic for one seed; the seeds show how much recall owes to
   the draw of the metric's samples). Box tightness (first seed): each ROI's volume over the volume of
   its kidney's own kidney + tumor bounding box, median and worst, and the sliding-window tiles each
   ROI costs the ROI model (its plans' spacing and patch, step 0.5; needs the model);
5. `nnunet_ppm predict-ct --boxes` (step 4's boxes of the first seed) on the first --predict-cases
   CTs (-device, default cpu; CRF and largest component on): seconds per CT besides localisation.
   --predict-cases 0 skips it and the ROI model (the window is then ROI_SIZE / ROI_MARGIN);
6. with --against-nnunet, the same CTs end to end with `predict-ct --atlases` (localisation included) and with
   `nnUNetv2_predict` of default nnU-Net (untrained, planned on the first group's whole CTs), one
   after the other: seconds per CT of each stage (localise, crop, preprocessing, sliding window, resampling,
   CRF, largest component, paste back), end to end, and each command's peak memory, with the ratios
   (benchmarks/against_nnunet.py says how each is measured).

Each seed's boxes are kept in WORK/boxes_<phase>_<orientation>_seed<S>.json and reused by a later run with the
same --work (delete them after changing the localiser); WORK/recall_<phase>_<orientation>.json holds every
kidney's share per seed.
`--record` appends the tables to benchmarks/RESULTS.md.
"""
import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch
from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape

import against_nnunet  # benchmarks/ is not a package: the script's folder is on sys.path
from results import Table

from nnunet_ppm.dataset_conversion.contrast_phases import PHASES  # noqa: E402
from nnunet_ppm.dataset_conversion.convert import convert_dataset  # noqa: E402
from nnunet_ppm.experiment import (Datasets, Experiment, Method, StepRunner, nnunet_environment,  # noqa: E402
                                   raw_dataset)
from nnunet_ppm.dataset_conversion.orientation import orientation_code  # noqa: E402
from nnunet_ppm.dataset_conversion.roi import RoiWindow, parse_in_plane_size, parse_length  # noqa: E402
from nnunet_ppm.dataset_conversion.synthesize import synthesize  # noqa: E402
from nnunet_ppm.localization.atlas_localizer import ATLAS_MARGIN_MM, MASS_MARGIN_MM, UNENHANCED_MARGIN_MM  # noqa: E402
from nnunet_ppm.localization.boxes_localizer import BoxesLocalizer  # noqa: E402
from nnunet_ppm.localization.kidney_mass import DEFAULT_SEARCH_MM  # noqa: E402
from nnunet_ppm.localization.localizer import ct_cases  # noqa: E402
from nnunet_ppm.whole_ct.predict_ct import roi_window_of  # noqa: E402
from nnunet_ppm.whole_ct.recall import KidneyRecall, roi_recall  # noqa: E402
from nnunet_ppm.whole_ct.rois import rois_for  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NNUNET_PPM_SHARED_DATA", REPO.parent / "shared" / "data"))
ATLAS_ID, ROI_ID = 931, 933
TARGET_IDS = {"arterial": 932, "venous": 934, "non-contrast": 935}  # one dataset per phase
ROI_SIZE, ROI_MARGIN = "110mm", "10mm"
MIN_FRACTION = 0.99


def choose_cases(labels_dir: Path, atlas_count: int, target_count: int, seed: int):
    """Disjoint random (seeded) atlas and target case ids among the label maps of `labels_dir`."""
    names = sorted(p.name[: -len(".nii.gz")] for p in labels_dir.glob("case_*.nii.gz"))
    if len(names) < atlas_count + target_count:
        raise SystemExit(f"{labels_dir} has {len(names)} label maps; need {atlas_count + target_count}")
    chosen = random.Random(seed).sample(names, atlas_count + target_count)
    return sorted(chosen[:atlas_count]), sorted(chosen[atlas_count:])


def roi_model(source: Path, atlas_raw: Path, experiment: Experiment) -> Path:
    """PPMTrainer_debug trained on the ROI dataset of the atlas CTs (reused when WORK has it); its model folder."""
    start = time.perf_counter()
    rois = experiment.convert(source, "kits19", ROI_ID, 0, ROI_SIZE)
    experiment.plan_nnunet(rois)
    experiment.plan_ppm(rois, 4, None)
    method = Method("ROI model", "PPMTrainer_debug", "nnUNetPPMPlans", on_rois=True)
    model = experiment.train(Datasets(atlas_raw, rois), method, "cpu", extra_env={"nnUNet_n_proc_DA": "0"})
    print(f"ROI model (PPMTrainer_debug): {time.perf_counter() - start:.0f} s", flush=True)
    return model


def painted_datasets(labels_dir: Path, args, env: dict):
    """(atlas CTs' source, atlas dataset, target dataset) under nnUNet_raw; kept from an earlier run of --work.

    The atlas CTs are arterial (the atlases and the ROI model are built once per --work); the target CTs are
    painted in --phase (the same label maps and anatomy in every phase), each phase its own dataset."""
    root = Path(env["nnUNet_raw"]).parent
    raw = Path(env["nnUNet_raw"])
    target_id = TARGET_IDS[args.phase]
    atlas_ids, target_ids = choose_cases(labels_dir, args.atlas_cases, args.cases, args.seed)
    for name, ids, seed, dataset_id, phase in (("atlases", atlas_ids, 0, ATLAS_ID, "arterial"),
                                               (f"targets_{args.phase}", target_ids, 1, target_id, args.phase)):
        if (raw / f"Dataset{dataset_id}_KiTS19").is_dir():
            continue
        start, source = time.perf_counter(), root / f"source_{name}"
        if not source.is_dir():  # synthesize's folder appears only when complete
            synthesize(source, seed=seed, layout="kits19", min_spacing_mm=args.spacing,
                       labels_from=[labels_dir / f"{case}.nii.gz" for case in ids], num_processes=2, progress=False,
                       phase=phase)
        convert_dataset(source, dataset_id, layout="kits19", raw_dir=raw, progress=False)
        print(f"painted {len(ids)} {phase} CTs ({name}): {time.perf_counter() - start:.0f} s", flush=True)
    return root / "source_atlases", raw / f"Dataset{ATLAS_ID}_KiTS19", raw / f"Dataset{target_id}_KiTS19"


def oriented(targets: Path, code: Optional[str], folder: Path) -> Path:
    """`targets` (imagesTr, labelsTr) with every CT and label map stored in orientation `code` under `folder`
    (written once; None: `targets` as painted)."""
    if code is None:
        return targets
    if not (folder / "labelsTr").is_dir():
        for kind in ("imagesTr", "labelsTr"):
            (folder / f"{kind}.partial").mkdir(parents=True, exist_ok=True)
            for path in sorted((targets / kind).glob("*.nii.gz")):
                sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(path)), code),
                                str(folder / f"{kind}.partial" / path.name))
        for kind in ("imagesTr", "labelsTr"):  # labelsTr last: it marks the folder complete
            (folder / f"{kind}.partial").rename(folder / kind)
    return folder


def run_name(args) -> str:
    """<phase>_<orientation> of the target CTs (--phase, --orientation), naming what WORK keeps of them."""
    return f"{args.phase}_{args.orientation or 'as-painted'}"


def boxes_path(work: Path, seed: int, args) -> Path:
    """Where `localize` writes the boxes of the target CTs for registration seed `seed`."""
    return work / f"boxes_{run_name(args)}_seed{seed}.json"


def localise(targets: Path, experiment: Experiment, seed: int, args) -> Path:
    """`nnunet_ppm localize` of the target CTs with registration seed `seed`; an earlier run's boxes are reused."""
    boxes = boxes_path(experiment.work, seed, args)
    experiment.run_step(f"locate the kidneys, registration seed {seed}",
                    ["nnunet_ppm", "localize", "-i", targets / "imagesTr", "-o", boxes, "--atlases",
                     experiment.work / "atlases", "--mass-search", args.mass_search, "--registration-seed", seed,
                     "--disable_progress_bar"], boxes)
    return boxes


def recall_of(boxes: Path, targets: Path, window: RoiWindow,
              tiles: Optional[Callable[[Sequence[int], Sequence[float]], int]] = None
              ) -> Tuple[List[KidneyRecall], List[int]]:
    """The recall of every reference kidney of the target CTs by the ROIs around the kidney boxes in `boxes`, and
    the sliding-window tiles of each ROI (with `tiles`: ROI shape, CT spacing -> tiles)."""
    localizer, recalls, roi_tiles = BoxesLocalizer(boxes), [], []
    for ct in ct_cases(targets / "imagesTr"):
        rois = rois_for(localizer.locate(ct), ct.image, window)
        reference = sitk.ReadImage(str(targets / "labelsTr" / f"{ct.case_id}.nii.gz"))
        recalls += roi_recall(ct.case_id, reference, {roi.side: roi.box for roi in rois}, ct.image)
        if tiles:
            roi_tiles += [tiles([stop - start for start, stop in roi.box], ct.image.GetSpacing()[::-1])
                          for roi in rois]
    return recalls, roi_tiles


def tiles_of(model: Path) -> Callable[[Sequence[int], Sequence[float]], int]:
    """Sliding-window tiles nnU-Net's predictor runs on an ROI of some shape and spacing (array order) with the
    model's 3d_fullres plans: resampled to the plans' spacing, padded to the patch, tile step 0.5, no mirroring."""
    plans = json.loads((model / "plans.json").read_text(encoding="utf-8"))
    configuration, order = plans["configurations"]["3d_fullres"], plans["transpose_forward"]
    patch, spacing = configuration["patch_size"], configuration["spacing"]

    def tiles(shape: Sequence[int], ct_spacing: Sequence[float]) -> int:
        resampled = compute_new_shape([shape[a] for a in order], [ct_spacing[a] for a in order], spacing)
        steps = compute_steps_for_sliding_window([max(int(s), p) for s, p in zip(resampled, patch)], patch, 0.5)
        return int(np.prod([len(axis) for axis in steps]))
    return tiles


def share(recall: KidneyRecall) -> float:
    """The kidney's share inside its ROI; 0 when no ROI of its side was found."""
    return recall.fraction if recall.found else 0.0


def spread_over_seeds(per_seed: Dict[int, List[KidneyRecall]]) -> Dict[str, List[float]]:
    """{"case side": [share per seed, in seed order]}; every seed must have seen the same kidneys."""
    shares: Dict[str, List[float]] = {}
    for recalls in per_seed.values():
        for r in recalls:
            shares.setdefault(f"{r.case} {r.side}", []).append(share(r))
    if any(len(values) != len(per_seed) for values in shares.values()):
        raise SystemExit("the seeds' runs saw different reference kidneys")
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atlas-cases", type=int, default=8, help="CTs the atlases are chosen from (default 8)")
    parser.add_argument("--atlases", type=int, default=8, help="atlases (default 8, as the paper)")
    parser.add_argument("--cases", type=int, default=20, help="CTs to localise (default 20)")
    parser.add_argument("--predict-cases", type=int, default=5,
                        help="of these, CTs to segment (default 5; 0: no ROI model, no predict-ct)")
    parser.add_argument("--spacing", type=float, default=2.0, help="paint CTs at >= this spacing, mm (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="which label maps are chosen")
    parser.add_argument("--registration-seeds", type=int, nargs="+", default=[0], metavar="S",
                        help="localise once per registration seed (default: 0)")
    parser.add_argument("--phase", choices=PHASES, default="arterial",
                        help="contrast phase the target CTs are painted in (default arterial; the atlases' CTs are "
                             "always arterial)")
    parser.add_argument("--orientation", default=None, metavar="CODE",
                        help="store the target CTs in this orientation (sitk.DICOMOrient code, e.g. LPS, RAS, SLP) "
                             "before localising (default: as painted, KiTS19's IPL)")
    parser.add_argument("--mass-search", type=float, default=DEFAULT_SEARCH_MM,
                        help=f"localize's --mass-search, mm (default {DEFAULT_SEARCH_MM:g}; 0: no mass growth)")
    parser.add_argument("-device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for everything (default: a temporary one); painted CTs, atlases and the ROI "
                             "model found there are reused")
    parser.add_argument("--against-nnunet", action="store_true",
                        help="also predict the --predict-cases CTs with predict-ct end to end and with "
                             "nnUNetv2_predict of a default nnU-Net model (untrained, planned on the atlas CTs): "
                             "stage times, peak memory (benchmarks/against_nnunet.py)")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.against_nnunet and not args.predict_cases:
        parser.error("--against-nnunet needs --predict-cases > 0")
    labels_dir = SHARED_DATA / "kits19-labels"
    if not labels_dir.is_dir():
        raise SystemExit(f"real KiTS19 labels not found at {labels_dir} (set NNUNET_PPM_SHARED_DATA)")
    seeds = args.registration_seeds
    table = Table(["phase", "orientation", "CTs localised", "CT size (median voxels)", "kidneys", "registration seeds",
                   "found, ROI >= 99%, per seed", "ROI >= 99% in every seed", "recall (every seed)",
                   "smallest share (min over kidneys and seeds)", "per-kidney median share, smallest",
                   "ROI box / kidney box volume (median, worst)", "tiles per ROI (median, max)",
                   "localisation s/CT (median, max)", "CTs segmented", "predict-ct --boxes s/CT (wall / CTs)",
                   "per CT: crop + ROI prediction + paste, s (mean)", "ROI sizes (voxels)"])
    with tempfile.TemporaryDirectory() as temporary:
        root = args.work or Path(temporary)
        env = nnunet_environment(root, own_folders=True)
        experiment = Experiment(root, env, StepRunner(root, env, total=6 + len(seeds) + 4 * args.against_nnunet),
                                processes=2)
        atlas_source, atlas_raw, painted = painted_datasets(labels_dir, args, env)
        targets = oriented(painted, args.orientation, root / f"targets_{run_name(args)}")
        orientation = orientation_code(ct_cases(targets / "imagesTr")[0].image.GetDirection())
        experiment.run_step("atlases from the atlas CTs", ["nnunet_ppm", "atlas", "build", "-d", atlas_raw, "-o",
                                                           root / "atlases", "-n", args.atlases,
                                                           "--disable_progress_bar"], root / "atlases")
        tiles = None
        if args.predict_cases:
            model = roi_model(atlas_source, atlas_raw, experiment)
            window, tiles = roi_window_of(model), tiles_of(model)
        else:
            window = RoiWindow(parse_in_plane_size(ROI_SIZE), parse_length(ROI_MARGIN))

        localized, per_seed = {}, {}
        for seed in seeds:
            boxes = localise(targets, experiment, seed, args)
            localized[seed] = json.loads(boxes.read_text(encoding="utf-8"))["cases"]
            per_seed[seed], roi_tiles = recall_of(boxes, targets, window, tiles if seed == seeds[0] else None)
        shares = spread_over_seeds(per_seed)
        (root / f"recall_{run_name(args)}.json").write_text(
            json.dumps({"seeds": seeds, "shares": shares}, indent=1) + "\n")
        shapes = [sitk.GetArrayViewFromImage(ct.image).shape for ct in ct_cases(targets / "imagesTr")]
        for kidney, values in shares.items():
            if min(values) < MIN_FRACTION:
                print(f"  below {MIN_FRACTION:g} in some seed: {kidney}: "
                      + ", ".join(f"seed {seed} {value:.3f}" for seed, value in zip(seeds, values)), flush=True)

        reports, wall, roi_sizes, versus = [], 0.0, [], None
        if args.predict_cases:
            boxes = boxes_path(root, seeds[0], args)
            subset = root / f"predict_cts_{run_name(args)}"
            subset.mkdir(exist_ok=True)
            predicted_cases = sorted(localized[seeds[0]])[: args.predict_cases]
            for case in predicted_cases:
                link = subset / f"{case}_0000.nii.gz"
                if not link.exists():
                    link.symlink_to(targets / "imagesTr" / link.name)
            out = root / f"predicted_{run_name(args)}"
            start = time.perf_counter()
            experiment.steps.run("predict-ct --boxes", ["nnunet_ppm", "predict-ct", "-i", subset, "-o", out, "-d",
                                                        ROI_ID, "-c", "3d_fullres", "-tr", "PPMTrainer_debug", "-p",
                                                        "nnUNetPPMPlans", "-f", "0", "-device", args.device, "-npp",
                                                        "1", "-nps", "1", "--boxes", boxes,
                                                        "--disable_progress_bar"])
            wall = time.perf_counter() - start
            reports = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(out.glob("*.json"))]
            roi_sizes = ["x".join(map(str, (stop - start for start, stop in roi["box"])))
                         for r in reports for roi in r["rois"]]
            if args.against_nnunet:
                versus = against_nnunet.compare(experiment, Datasets(atlas_raw, raw_dataset(env, ROI_ID)), subset,
                                                args.device, ["--atlases", root / "atlases", "--mass-search",
                                                              args.mass_search, "--registration-seed", seeds[0]])

    mean = lambda values: sum(values) / len(values) if values else float("nan")  # noqa: E731
    held_per_seed = [sum(share(r) >= MIN_FRACTION for r in per_seed[seed]) for seed in seeds]
    held_always = sum(min(values) >= MIN_FRACTION for values in shares.values())
    localisation = [entry["seconds"] for cases in localized.values() for entry in cases.values()]
    tightness = [r.box_over_kidney_box for r in per_seed[seeds[0]] if r.found]
    steps = ("cropping", "roi_prediction", "paste_and_write")
    row = [args.phase, orientation, str(len(shapes)), "x".join(str(int(median(axis))) for axis in zip(*shapes)),
           str(len(shares)),
           " ".join(map(str, seeds)), ", ".join(map(str, held_per_seed)), str(held_always),
           f"{held_always / len(shares):.3f}", f"{min(min(values) for values in shares.values()):.4f}",
           f"{min(median(values) for values in shares.values()):.4f}",
           f"{median(tightness):.2f}, {max(tightness):.2f}",
           f"{median(roi_tiles):g}, {max(roi_tiles)}" if roi_tiles else "-",
           f"{median(localisation):.1f}, {max(localisation):.1f}", str(len(reports)),
           f"{wall / len(reports):.1f}" if reports else "-",
           " + ".join(f"{mean([r['seconds'][step] for r in reports]):.1f}" for step in steps) if reports else "-",
           ", ".join(roi_sizes) or "-"]
    table.add(row)
    unstable = Table(["kidney", *[f"share, seed {seed}" for seed in seeds], "min", "median"])
    for kidney, values in shares.items():
        if min(values) < MIN_FRACTION:
            unstable.add([kidney, *[f"{value:.3f}" for value in values], f"{min(values):.3f}", f"{median(values):.3f}"])
    if args.record:
        table.record(f"Whole CT (benchmarks/whole_ct.py --seed {args.seed} --registration-seeds "
                     f"{' '.join(map(str, seeds))} --phase {args.phase}"
                     + (f" --orientation {args.orientation}" if args.orientation else "")
                     + f": {args.atlases} atlases from "
                     f"{args.atlas_cases} other arterial CTs, box margin {MASS_MARGIN_MM:g} mm around the kidney's "
                     f"mass or {ATLAS_MARGIN_MM:g} mm around the atlas box ({UNENHANCED_MARGIN_MM:g} mm for an "
                     f"unenhanced kidney), mass search {args.mass_search:g} mm, CTs painted onto "
                     f"KiTS19 labels at >= {args.spacing:g} mm, ROI window {ROI_SIZE}, "
                     + ("ROI model PPMTrainer_debug)" if args.predict_cases else "no ROI model: --predict-cases 0)"),
                     torch.device(args.device))
        if unstable.rows:
            unstable.record(f"Whole CT, kidneys below {MIN_FRACTION:g} in some registration seed (same run)",
                            torch.device(args.device))
        if versus:
            versus.record(against_nnunet.title(predicted_cases, args.phase, args.orientation, args.spacing),
                          torch.device(args.device))


if __name__ == "__main__":
    main()
