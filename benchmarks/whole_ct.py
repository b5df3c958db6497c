"""Benchmark: whole-CT segmentation (`nnunet_ppm predict-ct --atlases`) on CTs painted onto real KiTS19 label maps.

    python benchmarks/whole_ct.py                          # 8 atlases, 20 other CTs, painted at >= 2 mm
    python benchmarks/whole_ct.py --cases 40 --spacing 1.5 --record

Steps, all under --work (a temporary folder by default):

1. paint synthetic CTs onto copies of real KiTS19 label maps (../shared/data/kits19-labels) resampled
   to at least --spacing mm per axis: --atlas-cases of them (seed 0) for the atlases and the ROI
   model, --cases *other* label maps (seed 1) as the CTs to segment;
2. `nnunet_ppm atlas build` from the first group converted as whole CTs;
3. an ROI model: the first group converted with `--roi --roi-size 110mm` (the paper's 150 voxels at
   ~0.74 mm), planned by nnU-Net and `nnunet_ppm plan`, trained with PPMTrainer_debug. A plumbing
   budget: its labels mean nothing, but its time per ROI is that of the PPM network at this spacing;
4. `nnunet_ppm predict-ct --atlases` on the other CTs (-device, default cpu; CRF and largest
   component on).

Reported: localisation seconds per CT (from each OUT/<case>.json), whole-CT prediction seconds per
case (the command's wall time / cases, and the per-CT steps), and the recall figure: the fraction of
reference kidneys found whose ROI holds >= 99% of their kidney + tumor voxels
(:mod:`nnunet_ppm.whole_ct.recall`). `--record` appends the table to benchmarks/RESULTS.md.
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import SimpleITK as sitk
import torch

from results import record  # benchmarks/ is not a package: the script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tests' painted CTs and nnU-Net command helpers
from nnunet_runs import TinyDataset, command_env, run_command  # noqa: E402
from whole_ct_cases import painted_source  # noqa: E402

from nnunet_ppm.dataset_conversion.convert import convert_dataset  # noqa: E402
from nnunet_ppm.whole_ct.recall import roi_recall  # noqa: E402

SHARED_DATA = Path(os.environ.get("NNUNET_PPM_SHARED_DATA", REPO.parent / "shared" / "data"))
ATLAS_ID, TARGET_ID, ROI_ID = 931, 932, 933
ROI_SIZE, ROI_MARGIN = "110mm", "10mm"
MIN_FRACTION = 0.99


def choose_cases(labels_dir: Path, atlas_count: int, target_count: int, seed: int):
    """Disjoint random (seeded) atlas and target case ids among the label maps of `labels_dir`."""
    names = sorted(p.name[: -len(".nii.gz")] for p in labels_dir.glob("case_*.nii.gz"))
    if len(names) < atlas_count + target_count:
        raise SystemExit(f"{labels_dir} has {len(names)} label maps; need {atlas_count + target_count}")
    chosen = random.Random(seed).sample(names, atlas_count + target_count)
    return sorted(chosen[:atlas_count]), sorted(chosen[atlas_count:])


def roi_model(source: Path, env: dict) -> TinyDataset:
    """The ROI dataset of the atlas CTs, planned (nnU-Net + PPM plans) and trained with PPMTrainer_debug."""
    root = Path(env["nnUNet_raw"]).parent
    convert_dataset(source, ROI_ID, layout="kits19", raw_dir=env["nnUNet_raw"], roi=True, roi_size=ROI_SIZE,
                    roi_margin=ROI_MARGIN, keep_healthy=True, progress=False)
    run_command(["nnUNetv2_plan_and_preprocess", "-d", ROI_ID, "-c", "3d_fullres", "-np", "1"], env)
    run_command(["nnunet_ppm", "plan", "-d", ROI_ID, "-np", "1"], env)
    model = TinyDataset(root, env, ROI_ID)
    model.train("PPMTrainer_debug", "nnUNetPPMPlans")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atlas-cases", type=int, default=8, help="CTs the atlases are chosen from (default 8)")
    parser.add_argument("--atlases", type=int, default=8, help="atlases (default 8, as the paper)")
    parser.add_argument("--cases", type=int, default=20, help="CTs to segment (default 20)")
    parser.add_argument("--spacing", type=float, default=2.0, help="paint CTs at >= this spacing, mm (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="which label maps are chosen")
    parser.add_argument("-device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--work", type=Path, default=None, help="folder for everything (default: a temporary one)")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    labels_dir = SHARED_DATA / "kits19-labels"
    if not labels_dir.is_dir():
        raise SystemExit(f"real KiTS19 labels not found at {labels_dir} (set NNUNET_PPM_SHARED_DATA)")
    with tempfile.TemporaryDirectory() as temporary:
        root = args.work or Path(temporary)
        env = command_env(root)
        atlas_ids, target_ids = choose_cases(labels_dir, args.atlas_cases, args.cases, args.seed)
        start = time.perf_counter()
        atlas_source = painted_source(labels_dir, atlas_ids, root, "atlases", 0, args.spacing, num_processes=2)
        target_source = painted_source(labels_dir, target_ids, root, "targets", 1, args.spacing, num_processes=2)
        atlas_raw = convert_dataset(atlas_source, ATLAS_ID, layout="kits19", raw_dir=env["nnUNet_raw"], progress=False)
        targets = convert_dataset(target_source, TARGET_ID, layout="kits19", raw_dir=env["nnUNet_raw"],
                                  progress=False)
        print(f"painted and converted {len(atlas_ids)} + {len(target_ids)} CTs: {time.perf_counter() - start:.0f} s",
              flush=True)
        run_command(["nnunet_ppm", "atlas", "build", "-d", atlas_raw, "-o", root / "atlases", "-n", args.atlases,
                     "--disable_progress_bar"], env)
        start = time.perf_counter()
        model = roi_model(atlas_source, env)
        print(f"ROI model (PPMTrainer_debug): {time.perf_counter() - start:.0f} s", flush=True)

        out = root / "predicted"
        start = time.perf_counter()
        run_command(["nnunet_ppm", "predict-ct", "-i", targets / "imagesTr", "-o", out, "-d", ROI_ID,
                     "-c", "3d_fullres", "-tr", "PPMTrainer_debug", "-p", "nnUNetPPMPlans", "-f", "0",
                     "-device", args.device, "-npp", "1", "-nps", "1", "--atlases", root / "atlases",
                     "--disable_progress_bar"], model.env)
        wall = time.perf_counter() - start

        reports = [json.loads((out / f"{case}.json").read_text(encoding="utf-8")) for case in target_ids]
        recalls = []
        for report in reports:
            boxes = {roi["side"]: tuple(tuple(axis) for axis in roi["box"]) for roi in report["rois"]}
            reference = sitk.ReadImage(str(targets / "labelsTr" / f"{report['case']}.nii.gz"))
            recalls += roi_recall(report["case"], reference, boxes)
        held = [r for r in recalls if r.found and r.fraction >= MIN_FRACTION]
        for r in recalls:
            if r not in held:
                print(f"  missed: {r.case} {r.side}: found {r.found}, {r.fraction:.3f} of its voxels in its ROI")
        seconds = {step: [report["seconds"].get(step, 0.0) for report in reports]
                   for step in ("localization", "cropping", "roi_prediction", "paste_and_write")}
        shapes = [sitk.ReadImage(str(targets / "imagesTr" / f"{case}_0000.nii.gz")).GetSize()[::-1]
                  for case in target_ids]

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    header = ["CTs", "CT size (median voxels)", "kidneys", "found, ROI >= 99%", "recall", "min fraction",
              "localisation s/CT (median, max)", "predict-ct s/case (wall / CTs)",
              "per CT: localise + crop + ROI prediction + paste, s (mean)"]
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    median_shape = "x".join(str(int(median(axis))) for axis in zip(*shapes))
    row = [str(len(reports)), median_shape, str(len(recalls)), str(len(held)), f"{len(held) / len(recalls):.3f}",
           f"{min(r.fraction for r in recalls):.4f}",
           f"{median(seconds['localization']):.1f}, {max(seconds['localization']):.1f}", f"{wall / len(reports):.1f}",
           " + ".join(f"{mean(values):.1f}" for values in seconds.values())]
    print(" | ".join(header))
    print(" | ".join(row))
    if args.record:
        record(f"Whole CT (benchmarks/whole_ct.py: {args.atlases} atlases from {args.atlas_cases} other CTs, CTs painted "
               f"onto KiTS19 labels at >= {args.spacing:g} mm, ROI model PPMTrainer_debug, {os.cpu_count()} cores, "
               f"load average at the end {load})", header, [row], torch.device(args.device))


if __name__ == "__main__":
    main()
