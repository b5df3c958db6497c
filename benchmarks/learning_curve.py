"""Benchmark: the paper's method against default nnU-Net at equal training time, end to end on held-out whole CTs.

    python benchmarks/learning_curve.py --work /data/lc --record           # CTs painted onto ../shared/data KiTS19
    python benchmarks/learning_curve.py --source /data/kits19 --layout kits19 --work /data/lc --record   # real CTs
    python benchmarks/learning_curve.py --work /tmp/lc --train-cases 8 --test-cases 3 --minutes 1  # a quick look
    python benchmarks/learning_curve.py --work /data/lc --score-trained-cells   # beside a run: score its curve early

The experiment is `nnunet_ppm demo`'s (nnunet_ppm.experiment), larger: whole
CTs (painted onto --train-cases + --test-cases real KiTS19 label maps coarsened
to >= --spacing mm, or a real KiTS folder with --source) -> a whole-CT and a
per-kidney ROI dataset of the same patients, the same held out -> atlases from
the training CTs -> five cells, each trained for --minutes:

    nnUNetTrainer + nnUNetPlans on whole CTs      default nnU-Net, the reference
    PPMTrainer + nnUNetPPMPlans on ROIs           the paper (scored with and without CRF + largest component)
    nnUNetTrainer + nnUNetPPMPlans on ROIs        }
    PPMTrainer + nnUNetPlans on ROIs              } the 2x2 of trainer and plans
    nnUNetTrainer + nnUNetPlans on ROIs           } (this one is the paper's "3D U-Net" row)

Equal time, reproducibly: each cell's seconds per training iteration are
measured first (`nnUNetv2_train -tr PPMTrainerBenchmark_3epochs_4its` /
`nnUNetTrainerBenchmark_3epochs_4its` on its own data and plans; median of
epochs 2 and 3), all five timings one after the other before any cell trains,
so that they see the same machine and load (each one's load average is kept
beside it: TIMING_FOLDER/load_average.json), and each cell then trains
round(minutes * 60 / step) iterations (`*_learningCurve` trainers,
nnUNet_ppm_iterations; 5 epochs, each epoch's checkpoint kept). The curve's
time axis is that budget (iterations done times the timed step), which a
busier machine during training does not stretch; the wall time of the
training epochs (validation iterations included) is kept beside it in
curve.json and the table. Each kept checkpoint predicts the held-out whole CTs
end to end (ROI cells: the atlases' kidney boxes and `predict-ct --boxes`;
whole-CT cell: `nnUNetv2_predict`), every method without test-time mirroring (`--disable_tta`; our
choice: the same setting for all, 8x fewer network passes on the CPU; the paper does not mirror), and is
scored by `nnunet_ppm evaluate`; the
final ones go through `nnunet_ppm leaderboard` (Dice, MSSD, Surface Dice: the
Table-I-style rows). Prediction time per held-out CT is measured per cell on
the same machine (the command's wall time over the CTs, plus the ROI cells'
share of localisation).

Cost on the CPU here (2 cores, 2026-12-02, under load 4-5): at --spacing 2 the
whole-CT nnU-Net plan (patch 96x160x160, batch 2) took 995 s for its first
timing epoch of 4 iterations, and each held-out whole CT is 8 sliding-window
tiles per checkpoint: 5 checkpoints x 30 CTs do not fit in a session. At
--spacing 4 (patch 112x112x96, batch 4; one tile per CT; the ROI plans
28x28x36) the run is being recorded over sessions (`--spacing 4 --work
/work/lc4`); a GPU takes the default 2 mm. The cells train one after the other
and a killed run resumes at the first cell without checkpoint_final.pth (that
cell starts again; its timing run too, if it was the one killed).

Everything lives in --work and is reused by a rerun (WORK/budget.json pins the
budget: another --minutes needs another --work). Results: WORK/curve.json,
WORK/learning_curve.png; --record appends the tables to benchmarks/RESULTS.md
and copies the PNG to benchmarks/learning_curve.png.
"""
import argparse
import csv
import json
import os
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from nnunet_ppm.demo import training_epoch_seconds  # noqa: E402
from nnunet_ppm.experiment import Datasets, Experiment, Method, StepRunner, dataset_id, nnunet_environment  # noqa: E402
from nnunet_ppm.training.variants import ITERATIONS_ENV, IterationsFromEnvironment  # noqa: E402
from results import Table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NNUNET_PPM_SHARED_DATA", REPO.parent / "shared" / "data"))
REFERENCE = "nnU-Net (whole CT)"
PAPER = "PPM (paper)"
TIMING_TRAINERS = {"PPMTrainer": "PPMTrainerBenchmark_3epochs_4its",
                   "nnUNetTrainer": "nnUNetTrainerBenchmark_3epochs_4its"}


def cells(ppm_trainer: str) -> List[Method]:
    """The five trained cells; the paper's cell is scored twice (network only, and with CRF + largest component)."""
    unet = "nnUNetTrainer_learningCurve"
    return [Method(REFERENCE, unet, "nnUNetPlans", False),
            Method(PAPER, ppm_trainer, "nnUNetPPMPlans", True),
            Method(f"{PAPER} + CRF + LCC", ppm_trainer, "nnUNetPPMPlans", True, crf_lcc=True),
            Method("nnUNetTrainer + nnUNetPPMPlans (ROIs)", unet, "nnUNetPPMPlans", True),
            Method("PPMTrainer + nnUNetPlans (ROIs)", ppm_trainer, "nnUNetPlans", True),
            Method("3D U-Net: nnUNetTrainer + nnUNetPlans (ROIs)", unet, "nnUNetPlans", True)]


def trainer_family(trainer: str) -> str:
    return "PPMTrainer" if trainer.startswith("PPMTrainer") else "nnUNetTrainer"


def step_seconds(experiment: Experiment, datasets: Datasets, method: Method, device: str) -> dict:
    """Seconds per training iteration of `method`'s trainer family on its data and plans (a short timing run),
    with the machine's load average before and after it (``os.getloadavg``: 1, 5, 15 min)."""
    timing = Method(method.name, TIMING_TRAINERS[trainer_family(method.trainer)], method.plans, method.on_rois)
    folder = experiment.model_folder(datasets, timing) / "fold_0"
    result, load = folder / "benchmark_result.json", folder / "load_average.json"
    if not result.is_file():
        before = os.getloadavg()
        experiment.steps.run(f"time the training step: {timing.trainer} on {method.plans}",
                             ["nnUNetv2_train", dataset_id(datasets.of(timing)), "3d_fullres", "0", "-tr",
                              timing.trainer, "-p", timing.plans, "-device", device], {"nnUNet_n_proc_DA": "0"})
        load.write_text(json.dumps({"before": before, "after": os.getloadavg()}), encoding="utf-8")
    measured = json.loads(result.read_text(encoding="utf-8"))
    return {"seconds_per_iteration": statistics.median(measured["train_seconds_per_epoch"][1:])
            / measured["iterations_per_epoch"],
            "load_average": json.loads(load.read_text(encoding="utf-8")) if load.is_file() else None}


def painted_label_maps(train_cases: int, test_cases: int, seed: int) -> List[Path]:
    """`train_cases + test_cases` KiTS19 label maps of ../shared/data, drawn with `seed`."""
    folder = SHARED_DATA / "kits19-labels"
    maps = sorted(folder.glob("case_*.nii.gz"))
    if len(maps) < train_cases + test_cases:
        raise SystemExit(f"{folder} has {len(maps)} label maps; {train_cases + test_cases} needed "
                         f"(set NNUNET_PPM_SHARED_DATA, or use --source)")
    return sorted(random.Random(seed).sample(maps, train_cases + test_cases))


def predict_checkpoint(experiment: Experiment, datasets: Datasets, method: Method, epoch: int, boxes: Path,
                       device: str, images: Optional[Path] = None) -> Tuple[Path, float]:
    """The held-out whole CTs (or those of `images`) predicted end to end by `method`'s checkpoint after `epoch`
    epochs, without test-time mirroring, and scored: (prediction folder, seconds per CT of the prediction
    command; reused)."""
    images = images or datasets.test_images
    out = experiment.work / "predictions" / method.folder_name / f"epoch_{epoch}"
    timing = out.with_name(f"epoch_{epoch}_seconds_per_ct.json")
    started = time.perf_counter()
    experiment.predict(datasets, method, out, device, 1, boxes, checkpoint=f"checkpoint_epoch_{epoch}.pth",
                       images=images, mirroring=False)
    if not timing.is_file():  # written once the prediction has run (a reused one keeps its own)
        cts = len(list(images.glob("*_0000.nii.gz")))
        timing.write_text(json.dumps((time.perf_counter() - started) / cts), encoding="utf-8")
    evaluate(experiment, datasets, out)
    return out, json.loads(timing.read_text(encoding="utf-8"))


def curve_images(work: Path, datasets: Datasets, cases: Optional[int]) -> Path:
    """The held-out CTs whose Dice the curve follows: the first `cases` of them (sorted; links in
    WORK/curve_images), or all of them (None)."""
    images = sorted(datasets.test_images.glob("*_0000.nii.gz"))
    if cases is None or cases >= len(images):
        return datasets.test_images
    folder = work / f"curve_images_{cases}"
    folder.mkdir(exist_ok=True)
    for image in images[:cases]:
        if not (folder / image.name).is_symlink():
            (folder / image.name).symlink_to(image)
    return folder


def evaluate(experiment: Experiment, datasets: Datasets, predictions: Path,
             cases: Optional[Set[str]] = None) -> Dict[str, float]:
    """Mean kidney, tumor and kidney+tumor Dice of a prediction folder (`nnunet_ppm evaluate`; reused), over
    `cases` only where given."""
    scores = predictions.parent / f"{predictions.name}_scores"
    experiment.run_step(f"score {predictions.parent.name} {predictions.name}",
                        ["nnunet_ppm", "evaluate", "-ref", datasets.test_labels, "-pred", predictions, "-o", scores,
                         "-dj", datasets.whole_ct / "dataset.json"], scores / "metrics_per_case.csv")
    rows = [row for row in csv.DictReader(open(scores / "metrics_per_case.csv", encoding="utf-8"))
            if cases is None or row["case"] in cases]
    return {structure: statistics.fmean(float(row[f"{structure}_dice"]) for row in rows)
            for structure in ("kidney", "tumor", "kidney_tumor")}


def plot(curve: Dict[str, List[dict]], out: Path, title: str) -> None:
    """Kidney and tumor Dice against training time, one line per method."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for name, points in curve.items():
        minutes = [p["budget_minutes"] for p in points]
        for axis, structure in zip(axes, ("kidney", "tumor")):
            axis.plot(minutes, [p["dice"][structure] for p in points], marker="o", label=name)
    for axis, structure in zip(axes, ("kidney", "tumor")):
        axis.set(xlabel="training time at the timed step (min)", ylabel=f"{structure} Dice, held-out whole CTs", ylim=(0, 1))
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for everything; a rerun reuses it")
    parser.add_argument("--minutes", type=float, default=20.0, help="training time per cell (default 20)")
    parser.add_argument("--train-cases", type=int, default=100, help="training patients (default 100)")
    parser.add_argument("--test-cases", type=int, default=30, help="held-out patients (default 30)")
    parser.add_argument("--spacing", type=float, default=2.0, help="paint CTs at >= this spacing, mm (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="which label maps are drawn, and the CTs painted")
    parser.add_argument("--source", type=Path, help="a real KiTS folder instead of painted CTs (with --layout)")
    parser.add_argument("--layout", default="kits19", help="layout of --source (default kits19)")
    parser.add_argument("--roi-size", default="110mm", help="convert --roi-size (default 110mm: the paper's 150 "
                                                          "voxels at ~0.74 mm)")
    parser.add_argument("--ppm-patch", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="nnunet_ppm plan --patch (default: its own)")
    parser.add_argument("--ppm-lr", choices=("paper", "demo"), default="paper",
                        help="PPMTrainer's learning rate: the paper's 1e-3 (default) or the demo's 1e-2")
    parser.add_argument("-device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dataset-id", type=int, default=980, help="whole-CT dataset id; the ROIs get the next")
    parser.add_argument("--record", action="store_true", help="append the tables to benchmarks/RESULTS.md")
    parser.add_argument("--curve-epochs", type=int, nargs="+", metavar="EPOCH",
                        help="the earlier checkpoints (epochs done, 1-4) predicted for the curve (default: every one; "
                             "fewer where predicting the held-out CTs costs too much)")
    parser.add_argument("--curve-cases", type=int, metavar="N",
                        help="the curve's earlier checkpoints predict the first N held-out CTs only (default: all; "
                             "the end of the budget always predicts all of them)")
    parser.add_argument("--score-trained-cells", action="store_true",
                        help="only predict and score the --curve-epochs checkpoints of every cell that has finished "
                             "training, then stop: run beside the main run, it scores the curve's points while the "
                             "next cells train (the last checkpoints, timed, are left to the main run)")
    args = parser.parse_args()

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    budget = {"minutes": args.minutes, "train_cases": args.train_cases, "test_cases": args.test_cases,
              "spacing": args.spacing, "seed": args.seed, "source": str(args.source), "ppm_lr": args.ppm_lr,
              "roi_size": args.roi_size, "ppm_patch": args.ppm_patch, "device": args.device}
    pinned = work / "budget.json"
    if pinned.is_file() and json.loads(pinned.read_text(encoding="utf-8")) != budget:
        raise SystemExit(f"{work} holds a run with another budget ({pinned}); use another --work")
    pinned.write_text(json.dumps(budget, indent=1) + "\n", encoding="utf-8")

    env = nnunet_environment(work, own_folders=True)
    ppm_trainer = "PPMTrainer_learningCurve" + ("DemoLR" if args.ppm_lr == "demo" else "")
    methods = cells(ppm_trainer)
    trained = {m.model: m for m in methods}
    steps = 7 + 2 * len(trained) + 2 * IterationsFromEnvironment.budget_epochs * len(methods) + 1
    experiment = Experiment(work, env, StepRunner(work, env, total=steps), processes=min(os.cpu_count() or 1, 8))
    if args.source:
        source, layout = args.source, args.layout
    else:
        source = experiment.paint(painted_label_maps(args.train_cases, args.test_cases, args.seed), args.seed,
                                  args.spacing)
        layout = "kits19"
    datasets = experiment.prepare(source, layout, args.dataset_id, args.test_cases, args.roi_size, 2, args.ppm_patch)
    atlases = experiment.build_atlases(datasets)
    boxes = experiment.localize(datasets, atlases)
    localisation = json.loads(boxes.read_text(encoding="utf-8"))["cases"]
    localisation_seconds = statistics.fmean(entry["seconds"] for entry in localisation.values())

    # every cell's step is timed before any cell trains, so that all timings see the same machine and load
    step_times = {key: step_seconds(experiment, datasets, method, args.device) for key, method in trained.items()}
    iterations = {}
    for key, method in trained.items():
        seconds = step_times[key]["seconds_per_iteration"]
        iterations[key] = max(IterationsFromEnvironment.budget_epochs, round(args.minutes * 60 / seconds))
        print(f"{method.trainer} on {method.plans} ({'ROIs' if method.on_rois else 'whole CTs'}): {seconds:.2f} s "
              f"per iteration -> {iterations[key]} iterations", flush=True)
        if not args.score_trained_cells:
            experiment.train(datasets, method, args.device, extra_env={ITERATIONS_ENV: str(iterations[key]),
                                                                      "nnUNet_n_proc_DA": "0"})

    epochs = IterationsFromEnvironment.budget_epochs
    earlier = sorted({epoch for epoch in (args.curve_epochs or range(1, epochs)) if 1 <= epoch < epochs})
    on_curve = curve_images(work, datasets, args.curve_cases)
    curve_cases = {image.name[: -len("_0000.nii.gz")] for image in on_curve.glob("*_0000.nii.gz")}
    if args.score_trained_cells:
        for method in methods:
            if (experiment.model_folder(datasets, method) / "fold_0" / "checkpoint_final.pth").is_file():
                for epoch in earlier:
                    predict_checkpoint(experiment, datasets, method, epoch, boxes, args.device, on_curve)
        return
    epoch_times = {}
    for method in methods:
        logging = torch.load(experiment.model_folder(datasets, method) / "fold_0" / "checkpoint_final.pth",
                             map_location="cpu", weights_only=False)["logging"]
        epoch_times[method.name] = [end - start for start, end in zip(logging["epoch_start_timestamps"],
                                                                      logging["epoch_end_timestamps"])]

    def point(method: Method, epoch: int, out: Path) -> dict:
        """The curve's point of `method` after `epoch` epochs, scored from the predictions in `out` (the curve's CTs)."""
        done = max(1, round(iterations[method.model] / epochs)) * epoch  # as IterationsFromEnvironment splits them
        return {"epoch": epoch, "iterations": done,
                "budget_minutes": done * step_times[method.model]["seconds_per_iteration"] / 60,
                "wall_minutes": sum(epoch_times[method.name][:epoch]) / 60,
                "dice": evaluate(experiment, datasets, out, curve_cases)}

    what = (f"{args.train_cases} training / {args.test_cases} held-out "
            + (f"CTs of {args.source}" if args.source else f"CTs painted onto KiTS19 labels at >= {args.spacing:g} mm")
            + f", {args.minutes:g} min of training per cell on {args.device}, PPM learning rate {args.ppm_lr}")
    # the end of the budget first: the table, recorded before the curve's earlier points are predicted
    points: Dict[str, Dict[int, dict]] = {method.name: {} for method in methods}
    final, seconds_per_ct = {}, {}
    for method in methods:
        final[method.name], seconds = predict_checkpoint(experiment, datasets, method, epochs, boxes, args.device)
        seconds_per_ct[method.name] = seconds + (localisation_seconds if method.on_rois else 0.0)
        points[method.name][epochs] = point(method, epochs, final[method.name])
    board = work / "leaderboard"
    if not (board / "leaderboard.csv").is_file():
        experiment.leaderboard(datasets, final, REFERENCE, board)
    rows = {row["method"]: row for row in csv.DictReader(open(board / "leaderboard.csv", encoding="utf-8"))}
    table = Table(["method", "s per iteration", "iterations", "budget min", "wall min", "kidney Dice", "kidney MSSD mm", "kidney Surface Dice",
                   "tumor Dice", "tumor MSSD mm", "tumor Surface Dice", "end-to-end s per held-out CT",
                   "vs default nnU-Net speed"])
    for method in methods:
        row, last = rows[method.name], points[method.name][epochs]
        cell = lambda key: f"{float(row[key + '_mean']):.3f} ± {float(row[key + '_std']):.3f}"  # noqa: E731
        table.add([method.name, f"{step_times[method.model]['seconds_per_iteration']:.2f}", str(last["iterations"]),
                   f"{last['budget_minutes']:.1f}", f"{last['wall_minutes']:.1f}", cell("kidney_dice"),
                   cell("kidney_mssd_mm"), cell("kidney_surface_dice"), cell("tumor_dice"), cell("tumor_mssd_mm"),
                   cell("tumor_surface_dice"), f"{seconds_per_ct[method.name]:.1f}",
                   f"{seconds_per_ct[REFERENCE] / seconds_per_ct[method.name]:.2f}x"])
    recorded = work / "table_recorded"  # a rerun that adds curve points does not record the table again
    if args.record and not recorded.is_file():
        table.record(f"Learning benchmark, end of budget (benchmarks/learning_curve.py: {what}; end to end on "
                     f"the held-out whole CTs; curve: learning_curve.png)", torch.device(args.device))
        recorded.touch()

    for epoch in earlier:  # the curve
        for method in methods:
            out, _ = predict_checkpoint(experiment, datasets, method, epoch, boxes, args.device, on_curve)
            points[method.name][epoch] = point(method, epoch, out)
    curve = {name: [by_epoch[epoch] for epoch in sorted(by_epoch)] for name, by_epoch in points.items()}
    (work / "curve.json").write_text(json.dumps({"budget": budget, "curve": curve, "step_times": {
        " / ".join(map(str, model)): timing for model, timing in step_times.items()}}, indent=1)
                                     + "\n", encoding="utf-8")
    plot(curve, work / "learning_curve.png", what + f"; Dice of {len(curve_cases)} held-out CTs")
    if args.record:
        shutil.copyfile(work / "learning_curve.png", Path(__file__).with_name("learning_curve.png"))

if __name__ == "__main__":
    main()
