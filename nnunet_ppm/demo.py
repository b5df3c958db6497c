"""`nnunet_ppm demo`: the whole story on synthetic CTs, with real nnU-Net commands, ending with the leaderboard.

generate CTs -> convert (ROI layout, held-out test patients) -> nnU-Net plan and
preprocess -> `nnunet_ppm plan` -> train PPMTrainer (nnUNetPPMPlans) and default
nnU-Net (nnUNetTrainer, nnUNetPlans) on the same split with the same budget ->
predict the held-out cases (PPM with and without CRF + largest component) ->
leaderboard with statistics and overlays -> OUT/README.md.

The budget follows the hardware (`--budget` overrides it): on a CPU a small
one that ends within about 15 minutes on 2 cores (numbers are poor, and the
demo says so); on a GPU one meant to reach meaningful Dice. `--budget smoke`
runs every step on 7 tiny CTs with 4 training iterations per method, in a few
minutes: the test suite's shared dataset and models come from it. Every step runs as
its own command; its output goes to OUT/logs/, and the command lines to
OUT/commands.sh, so each step can be rerun by hand.
"""
import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
TEST_CASES_NAME = "imagesTs"


@dataclass(frozen=True)
class Budget:
    """What the demo generates and how long it trains (the trainer suffix names a TrainingBudget variant)."""

    name: str
    device: str
    preset: str
    cases: int
    test_cases: int
    trainer_suffix: str
    ppm_patch: Optional[Sequence[int]]
    ppm_batch_size: int
    roi: bool
    prediction_processes: int  # -npp / -nps of the predictions; 0: in the main process (tiny CTs)
    note: str


BUDGETS: Dict[str, Budget] = {
    # smoke: a patch as large as the tiny CTs (at most 48 x 64 x 80), so each case is one sliding-window tile
    "smoke": Budget("smoke", "cpu", "tiny", 7, 2, "debug", (48, 64, 80), 2, False, 0,
                    "Smoke budget: every step on 7 tiny CTs, 2 epochs of 2 training iterations per method. It shows "
                    "that the pipeline runs (the test suite uses it); its Dice values say nothing about either method."),
    "cpu": Budget("cpu", "cpu", "tiny", 14, 4, "cpuDemo", (32, 64, 64), 2, False, 0,
                  "CPU budget: tiny low-resolution CTs, 80 training iterations per method, predictions without "
                  "test-time mirroring. This proves the pipeline end to end; its Dice values say nothing about either method. Run it on a GPU "
                  "(or with --budget gpu) for numbers that mean something."),
    "gpu": Budget("gpu", "cuda", "small", 40, 10, "gpuDemo", None, 4, True, 3,
                  "GPU budget: per-kidney ROIs of 40 synthetic patients (10 held out), 30 epochs of 250 "
                  "iterations per method: synthetic data, so compare the methods, not the absolute Dice."),
}


def pick_budget(requested: str) -> Budget:
    """The requested budget, or for 'auto' the GPU budget when CUDA is available and the CPU one otherwise."""
    if requested == "auto":
        return BUDGETS["gpu" if torch.cuda.is_available() else "cpu"]
    return BUDGETS[requested]


def nnunet_environment(out: Path) -> Dict[str, str]:
    """os.environ, with nnU-Net's three folders inside `out` when the user has not set them.

    The folder of this Python's console scripts goes first on PATH, so the steps find
    nnUNetv2_* and nnunet_ppm of this environment also when it is not activated.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for name in NNUNET_FOLDERS:
        if not env.get(name):
            env[name] = str(out / name)
            Path(env[name]).mkdir(parents=True, exist_ok=True)
    env.setdefault("nnUNet_def_n_proc", str(min(os.cpu_count() or 1, 4)))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class StepRunner:
    """Runs the demo's commands one after the other, logging each, and stops with a clear message on failure."""

    def __init__(self, out: Path, env: Dict[str, str], total: int):
        self.out, self.env, self.total, self.done = out, env, total, 0
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.commands = out / "commands.sh"
        self.commands.write_text("#!/usr/bin/env bash\n# the commands `nnunet_ppm demo` ran, in order\nset -e\n"
                                 + "".join(f"export {n}={shlex.quote(env[n])}\n" for n in NNUNET_FOLDERS), encoding="utf-8")
        self.timings: List[str] = []

    def run(self, title: str, command: Sequence[str], extra_env: Optional[Dict[str, str]] = None) -> str:
        self.done += 1
        command = [str(c) for c in command]
        log = self.logs / f"{self.done:02d}_{'_'.join(title.split()[:4]).strip(':,')}.log"
        print(f"[{self.done}/{self.total}] {title}\n        $ {shlex.join(command)}", flush=True)
        with self.commands.open("a", encoding="utf-8") as f:
            f.write(" ".join(f"{k}={v}" for k, v in (extra_env or {}).items()) + (" " if extra_env else "")
                    + shlex.join(command) + "\n")
        start = time.time()
        result = subprocess.run(command, env={**self.env, **(extra_env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, encoding="utf-8", errors="replace")
        log.write_text(result.stdout, encoding="utf-8")
        seconds = time.time() - start
        self.timings.append(f"| {self.done} | {title} | {seconds:.0f} s |")
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-25:])
            raise SystemExit(f"nnunet_ppm demo: step {self.done} ({title}) failed with exit code "
                             f"{result.returncode}; full output in {log}\n{tail}")
        print(f"        done in {seconds:.0f} s (log: {log.relative_to(self.out)})", flush=True)
        return result.stdout


def _dataset_name(env: Dict[str, str], dataset_id: int) -> str:
    matches = sorted(Path(env["nnUNet_raw"]).glob(f"Dataset{dataset_id:03d}_*"))
    return matches[0].name


def _demote_headings(markdown: str, levels: int) -> str:
    """`markdown` with every heading `levels` deeper, to nest a document under a section of another."""
    return "\n".join("#" * levels + line if line.startswith("#") else line for line in markdown.splitlines())


def _write_readme(out: Path, budget: Budget, dataset: str, env: Dict[str, str], leaderboard: Path,
                  timings: List[str], board_text: str) -> None:
    text = f"""# nnunet_ppm demo

What ran (every command is in `commands.sh`, every output in `logs/`):

1. `nnunet_ppm synth`: {budget.cases} synthetic arterial-phase CTs ({budget.preset} preset) in the paper's
   patient-folder layout, in `source/`.
2. `nnunet_ppm convert roi`: nnU-Net raw dataset `{dataset}` with {budget.test_cases} held-out test patients
   (imagesTs/labelsTs){", one ROI per kidney" if budget.roi else ""}.
3. `nnUNetv2_plan_and_preprocess` (with the dataset integrity check), then `nnunet_ppm plan`
   (nnUNetPPMPlans: the 3D_FCN_PPM network, the paper's patch, batch and HU window).
4. `nnUNetv2_train` fold 0 of both methods with the same budget ({budget.trainer_suffix} trainer variants):
   PPMTrainer_{budget.trainer_suffix} on nnUNetPPMPlans (the paper) and nnUNetTrainer_{budget.trainer_suffix}
   on nnUNetPlans (default nnU-Net).
5. Predictions of the held-out cases in `predictions/`: PPM through `nnunet_ppm predict` with and without the
   paper's CRF + largest component, default nnU-Net through `nnUNetv2_predict`.
6. `nnunet_ppm leaderboard` against default nnU-Net: `{leaderboard.relative_to(out)}/` (Markdown, CSV,
   box plots, overlays of the worst and best cases).

{budget.note}

nnU-Net folders: raw `{env['nnUNet_raw']}`, preprocessed `{env['nnUNet_preprocessed']}`,
results `{env['nnUNet_results']}`.

## Leaderboard (held-out cases)

{_demote_headings(board_text, 2)}

## Time per step

| step | what | wall time |
|---|---|---|
{chr(10).join(timings)}
"""
    tmp = out / ".README.md.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out / "README.md")


def run_demo(out: Path, budget: Budget, dataset_id: int = 990, seed: int = 0) -> Path:
    """Run every step of the demo into `out`; returns the leaderboard folder."""
    out = out.resolve()
    if (out / "README.md").exists() or (out / "source").exists():
        raise SystemExit(f"nnunet_ppm demo: {out} holds an earlier demo; choose another --out or remove it")
    out.mkdir(parents=True, exist_ok=True)
    env = nnunet_environment(out)
    if list(Path(env["nnUNet_raw"]).glob(f"Dataset{dataset_id:03d}_*")):
        raise SystemExit(f"nnunet_ppm demo: nnUNet_raw ({env['nnUNet_raw']}) already has a dataset {dataset_id}; "
                         f"pass another --dataset-id")
    print(f"nnunet_ppm demo: budget '{budget.name}' on {budget.device}. {budget.note}\n", flush=True)

    steps = StepRunner(out, env, total=10)  # one per steps.run below
    ppm_trainer, nnunet_trainer = f"PPMTrainer_{budget.trainer_suffix}", f"nnUNetTrainer_{budget.trainer_suffix}"
    steps.run("generate synthetic CTs", ["nnunet_ppm", "synth", out / "source", "--cases", budget.cases,
                                         "--seed", seed, "--preset", budget.preset, "--layout", "roi"])
    steps.run("convert to an nnU-Net raw dataset",
              ["nnunet_ppm", "convert", "roi", out / "source", "-d", dataset_id, "--test-cases", budget.test_cases]
              + (["--roi"] if budget.roi else []))
    num_processes = env["nnUNet_def_n_proc"]
    steps.run("nnU-Net fingerprint, plans and preprocessing",
              ["nnUNetv2_plan_and_preprocess", "-d", dataset_id, "-c", "3d_fullres", "--verify_dataset_integrity",
               "-np", num_processes, "-npfp", num_processes])
    steps.run("nnUNetPPMPlans and preprocessing",
              ["nnunet_ppm", "plan", "-d", dataset_id, "--batch-size", budget.ppm_batch_size, "-np", num_processes]
              + (["--patch", *budget.ppm_patch] if budget.ppm_patch else []))
    train_env = {"nnUNet_n_proc_DA": "0"} if budget.device == "cpu" else None
    for trainer, plans in ((ppm_trainer, "nnUNetPPMPlans"), (nnunet_trainer, "nnUNetPlans")):
        steps.run(f"train {trainer} on {plans}", ["nnUNetv2_train", dataset_id, "3d_fullres", "0", "-tr", trainer,
                                                   "-p", plans, "-device", budget.device], train_env)

    dataset = _dataset_name(env, dataset_id)
    raw = Path(env["nnUNet_raw"]) / dataset
    predictions = out / "predictions"
    common = ["-i", raw / TEST_CASES_NAME, "-d", dataset_id, "-c", "3d_fullres", "-f", "0", "-device", budget.device,
              "-npp", budget.prediction_processes, "-nps", budget.prediction_processes]
    methods = {"PPMTrainer+CRF+LCC": predictions / "ppm_crf_lcc", "PPMTrainer": predictions / "ppm",
               "nnUNetTrainer": predictions / "nnunet"}
    steps.run("predict held-out cases: PPM + CRF + largest component",
              ["nnunet_ppm", "predict", *common, "-o", methods["PPMTrainer+CRF+LCC"], "-tr", ppm_trainer,
               "-p", "nnUNetPPMPlans"])
    steps.run("predict held-out cases: PPM network only",
              ["nnunet_ppm", "predict", *common, "-o", methods["PPMTrainer"], "-tr", ppm_trainer,
               "-p", "nnUNetPPMPlans", "--no-crf", "--no-lcc"])
    steps.run("predict held-out cases: default nnU-Net",
              ["nnUNetv2_predict", *common, "-o", methods["nnUNetTrainer"], "-tr", nnunet_trainer, "-p", "nnUNetPlans"])

    leaderboard = out / "leaderboard"
    steps.run("leaderboard against default nnU-Net",
              ["nnunet_ppm", "leaderboard", "-ref", raw / "labelsTs", "-i", raw / TEST_CASES_NAME,
               "-dj", raw / "dataset.json", "-o", leaderboard, "--reference", "nnUNetTrainer",
               "--pred", *[f"{name}={folder}" for name, folder in methods.items()]])
    board_text = (leaderboard / "leaderboard.md").read_text(encoding="utf-8").strip()
    _write_readme(out, budget, dataset, env, leaderboard, steps.timings, board_text)
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
