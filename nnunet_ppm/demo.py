"""`nnunet_ppm demo`: the paper's pipeline against default nnU-Net on synthetic whole CTs, ending with the leaderboard.

generate whole CTs -> per-kidney ROI and whole-CT datasets (held-out patients
kept whole) -> nnU-Net plans and `nnunet_ppm plan` -> atlases from the training
CTs -> PPMTrainer on the ROIs (nnUNetPPMPlans) and default nnU-Net on the whole
CTs, each with the same training time -> the held-out whole CTs predicted end
to end (PPM with `predict-ct`, with and without CRF + largest component;
nnU-Net with `nnUNetv2_predict`) -> leaderboard -> OUT/README.md. The steps are
:mod:`nnunet_ppm.experiment`'s, which the learning benchmark runs at a larger size.

The budget follows the hardware (`--budget` overrides it): on a CPU one that
ends within about 15 minutes on 2 idle cores, on a GPU a longer one.
`--budget smoke` runs every step on 7 tiny CTs with 4 training iterations per
method: the test suite's shared datasets and models come from it. Every step
runs as its own command; its output goes to OUT/logs/, and the command lines to
OUT/commands.sh, so each step can be rerun by hand.
"""
import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from nnunet_ppm.experiment import Datasets, Experiment, Method, StepRunner, nnunet_environment
from nnunet_ppm.training import variants


@dataclass(frozen=True)
class Budget:
    """What the demo generates, which methods it trains and how long (trainer suffix: a variants.py budget)."""

    name: str
    device: str
    preset: str
    cases: int
    test_cases: int
    trainer_suffix: str
    roi_size: str  # convert --roi-size: the ROIs' in-plane size
    ppm_patch: Optional[Sequence[int]]
    ppm_batch_size: int
    prediction_processes: int  # -npp / -nps of the predictions; 0: in the main process (tiny CTs)
    note: str
    roi_unet: bool = False  # also nnU-Net's U-Net on the ROIs (the paper's "3D U-Net" row)

    @property
    def methods(self) -> Tuple[Method, ...]:
        """PPM (with and without CRF + largest component) on ROIs, [nnU-Net's U-Net on ROIs], nnU-Net on whole CTs."""
        ppm, unet = f"PPMTrainer_{self.trainer_suffix}", f"nnUNetTrainer_{self.trainer_suffix}"
        return (Method("PPMTrainer+CRF+LCC", ppm, "nnUNetPPMPlans", True, True),
                Method("PPMTrainer", ppm, "nnUNetPPMPlans", True),
                *((Method("nnUNetTrainer_ROIs", unet, "nnUNetPlans", True),) if self.roi_unet else ()),
                Method(REFERENCE, unet, "nnUNetPlans", False))


def training_iterations(trainer: str) -> int:
    """Training iterations of one of our trainer variants (epochs x iterations per epoch)."""
    cls = getattr(variants, trainer)
    return cls.budget_epochs * cls.budget_iterations_per_epoch


REFERENCE = "nnUNetTrainer"  # default nnU-Net on whole CTs, the leaderboard's reference
PAPER_ROI = "110mm"  # the paper's 150 x 150 voxels at its ~0.74 mm pixels

BUDGETS: Dict[str, Budget] = {
    # smoke: a PPM patch as large as the tiny ROIs, so each ROI is one sliding-window tile
    "smoke": Budget("smoke", "cpu", "tiny", 7, 2, "debug", PAPER_ROI, (24, 32, 32), 2, 0,
                    "Smoke budget: every step on 7 tiny CTs, 2 epochs of 2 training iterations per method. It shows "
                    "that the pipeline runs (the test suite uses it); its Dice values say nothing about either "
                    "method.", roi_unet=True),
    "cpu": Budget("cpu", "cpu", "tiny", 24, 6, "cpuDemo", PAPER_ROI, (24, 32, 32), 2, 0,
                  f"CPU budget: 24 tiny low-resolution synthetic CTs (~4.4 x 4.4 x 6 mm voxels), 6 held out. Each "
                  f"method trains for about {variants.CPU_DEMO_TRAINING_SECONDS} s on 2 idle CPU cores, as a fixed "
                  f"number of iterations from its measured time per iteration: PPMTrainer_cpuDemo "
                  f"{training_iterations('PPMTrainer_cpuDemo')} iterations at {variants.PPM_CPU_STEP_SECONDS} s, "
                  f"nnUNetTrainer_cpuDemo {training_iterations('nnUNetTrainer_cpuDemo')} at "
                  f"{variants.NNUNET_CPU_STEP_SECONDS} s (this run's times are in the training table). PPMTrainer "
                  f"uses the demo learning rate 1e-2 (the paper's 1e-3 barely moves in minutes); predictions "
                  f"without test-time mirroring. Synthetic data: compare the methods, not the absolute Dice with "
                  f"the paper's."),
    "gpu": Budget("gpu", "cuda", "small", 40, 10, "gpuDemo", PAPER_ROI, None, 4, 3,
                  "GPU budget: 40 synthetic patients (10 held out), 30 epochs of 250 iterations per method (the same "
                  "iterations, not yet the same time: no GPU step times measured yet); synthetic data, so compare "
                  "the methods, not the absolute Dice."),
}


def pick_budget(requested: str) -> Budget:
    """The requested budget, or for 'auto' the GPU budget when CUDA is available and the CPU one otherwise."""
    if requested == "auto":
        return BUDGETS["gpu" if torch.cuda.is_available() else "cpu"]
    return BUDGETS[requested]


def _demote_headings(markdown: str, levels: int) -> str:
    """`markdown` with every heading `levels` deeper, to nest a document under a section of another."""
    return "\n".join("#" * levels + line if line.startswith("#") else line for line in markdown.splitlines())


def training_epoch_seconds(model_folder: Path, fold: str = "0") -> float:
    """Seconds of a finished training's epochs (training and validation iterations), from nnU-Net's own log in
    checkpoint_final.pth: without process start-up and the final validation."""
    checkpoint = torch.load(model_folder / f"fold_{fold}" / "checkpoint_final.pth", map_location="cpu",
                            weights_only=False)
    log = checkpoint["logging"]
    return sum(end - start for start, end in zip(log["epoch_start_timestamps"], log["epoch_end_timestamps"]))


def _training_rows(budget: Budget, experiment: Experiment, datasets: Datasets) -> List[str]:
    """One row per trained model: iterations (fixed by its trainer variant) and the epochs' time measured here."""
    rows, seen = [], set()
    for method in budget.methods:
        if method.model in seen:
            continue
        seen.add(method.model)
        seconds = training_epoch_seconds(experiment.model_folder(datasets, method))
        iterations = training_iterations(method.trainer)
        rows.append(f"| {method.trainer} | {method.plans} | {'ROIs' if method.on_rois else 'whole CTs'} | "
                    f"{iterations} | {seconds:.0f} s | {seconds / iterations:.2f} s |")
    return rows


def _write_readme(out: Path, budget: Budget, datasets: Datasets, experiment: Experiment, leaderboard: Path,
                  board_text: str) -> None:
    env, steps = experiment.env, experiment.steps
    text = f"""# nnunet_ppm demo

What ran (every command is in `commands.sh`, every output in `logs/`):

1. `nnunet_ppm synth`: {budget.cases} synthetic arterial-phase whole CTs ({budget.preset} preset), in
   `source_{budget.preset}/`.
2. `nnunet_ppm convert roi` twice, with the same {budget.test_cases} held-out patients kept as whole CTs
   (imagesTs/labelsTs): `{datasets.rois.name}` (per-kidney ROIs of {budget.roi_size} in-plane, the paper's
   data) and `{datasets.whole_ct.name}` (whole CTs, default nnU-Net's data).
3. `nnUNetv2_plan_and_preprocess` of both (with the dataset integrity check), then `nnunet_ppm plan` of the
   ROIs (nnUNetPPMPlans: the 3D_FCN_PPM network, the paper's batch and HU window).
4. `nnunet_ppm atlas build`: atlases from the training CTs (never a held-out one), in `atlases/`.
5. `nnUNetv2_train` fold 0 of each method ({budget.trainer_suffix} trainer variants, the same training time
   each as a fixed number of iterations, below).
6. `nnunet_ppm localize`: kidney boxes of the held-out CTs from the atlases (`boxes.json`), then the held-out
   whole CTs predicted end to end in `predictions/`: the ROI models with `nnunet_ppm predict-ct --boxes`
   (crop, predict, paste back; PPM with and without the paper's CRF + largest component), default nnU-Net
   with `nnUNetv2_predict`.
7. `nnunet_ppm leaderboard` against default nnU-Net: `{leaderboard.relative_to(out)}/` (Markdown, CSV,
   box plots, overlays of the worst and best cases).

{budget.note}

Every score is end to end on held-out whole CTs: no held-out label was used to crop, select or tune.

nnU-Net folders: raw `{env['nnUNet_raw']}`, preprocessed `{env['nnUNet_preprocessed']}`,
results `{env['nnUNet_results']}`.

## Leaderboard (held-out whole CTs)

{_demote_headings(board_text, 2)}

## Training budget

| trainer | plans | data | iterations | training epochs here | per iteration |
|---|---|---|---|---|---|
{chr(10).join(_training_rows(budget, experiment, datasets))}

Training epochs: the time of the training and validation iterations from nnU-Net's log (checkpoint_final.pth),
without start-up and the final validation (those are in the time per step below).

## Time per step

| step | what | wall time |
|---|---|---|
{chr(10).join(steps.timings)}
"""
    tmp = out / ".README.md.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out / "README.md")


def demo_steps(budget: Budget) -> int:
    """Commands the demo runs: generate, 2 conversions, 2 plannings, atlases, trainings, localize, predictions,
    leaderboard."""
    trainings = len({m.model for m in budget.methods})
    return 6 + trainings + 1 + len(budget.methods) + 1


def run_demo(out: Path, budget: Budget, dataset_id: int = 990, seed: int = 0) -> Path:
    """Run every step of the demo into `out` (datasets `dataset_id`: whole CTs, `dataset_id` + 1: ROIs);
    returns the leaderboard folder."""
    out = out.resolve()
    if (out / "README.md").exists() or (out / "commands.sh").exists():
        raise SystemExit(f"nnunet_ppm demo: {out} holds an earlier demo; choose another --out or remove it")
    out.mkdir(parents=True, exist_ok=True)
    env = nnunet_environment(out)
    taken = [p.name for i in (dataset_id, dataset_id + 1) for p in Path(env["nnUNet_raw"]).glob(f"Dataset{i:03d}_*")]
    if taken:
        raise SystemExit(f"nnunet_ppm demo: nnUNet_raw ({env['nnUNet_raw']}) already has {', '.join(taken)}; "
                         f"pass another --dataset-id (the demo uses it and the next one)")
    print(f"nnunet_ppm demo: budget '{budget.name}' on {budget.device}. {budget.note}\n", flush=True)

    steps = StepRunner(out, env, total=demo_steps(budget))
    experiment = Experiment(out, env, steps, processes=int(env["nnUNet_def_n_proc"]))
    source = experiment.generate(budget.cases, seed, budget.preset)
    datasets = experiment.prepare(source, "roi", dataset_id, budget.test_cases, budget.roi_size,
                                  budget.ppm_batch_size, budget.ppm_patch)
    atlases = experiment.build_atlases(datasets)
    train_env = {"nnUNet_n_proc_DA": "0"} if budget.device == "cpu" else None
    trained = set()
    for method in budget.methods:
        if method.model not in trained:
            trained.add(method.model)
            experiment.train(datasets, method, budget.device, extra_env=train_env)
    boxes = experiment.localize(datasets, atlases)
    predictions = {method.name: experiment.predict(datasets, method, out / "predictions" / method.folder_name,
                                                   budget.device, budget.prediction_processes, boxes)
                   for method in budget.methods}
    leaderboard = experiment.leaderboard(datasets, predictions, REFERENCE, out / "leaderboard")
    board_text = (leaderboard / "leaderboard.md").read_text(encoding="utf-8").strip()
    _write_readme(out, budget, datasets, experiment, leaderboard, board_text)
    print(f"\n{board_text}\n\n{budget.note}\nEverything is in {out} (start with {out / 'README.md'}).")
    return leaderboard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--budget", choices=["auto", *BUDGETS], default="auto",
                        help="auto (default): gpu when CUDA is available, else cpu; smoke: every step on tiny CTs in "
                             "a few minutes, numbers meaningless (what the tests run)")
    parser.add_argument("--dataset-id", type=int, default=990, help="nnU-Net dataset id to use (default 990)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic CTs")


def run(args: argparse.Namespace) -> int:
    start = time.time()
    run_demo(args.out, pick_budget(args.budget), args.dataset_id, args.seed)
    print(f"nnunet_ppm demo finished in {(time.time() - start) / 60:.1f} min")
    return 0
