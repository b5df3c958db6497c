"""Shared by benchmarks/training_loop.py and inference.py: synthetic datasets, converted and planned for both methods.

Runs the commands a user runs (`nnunet_ppm synth`, `nnunet_ppm convert roi`,
`nnUNetv2_plan_and_preprocess`, `nnunet_ppm plan`) with nnU-Net's folders
inside the work folder (never the user's own); each command's output goes to
WORK/logs/ and the command lines to WORK/commands.sh (nnunet_ppm.demo's
StepRunner). What a work folder already holds is reused.
"""
import os
from pathlib import Path
from typing import Optional, Sequence

from nnunet_ppm.demo import NNUNET_FOLDERS, StepRunner, nnunet_environment


class BenchmarkDatasets:
    """nnU-Net folders in ``work`` and the steps that fill them; ``steps`` counts the commands for the progress lines."""

    def __init__(self, work: Path, steps: int):
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.env = nnunet_environment(work)
        for name in NNUNET_FOLDERS:
            self.env[name] = str(work / name)
            (work / name).mkdir(exist_ok=True)
        self.steps = StepRunner(work, self.env, total=steps)
        self.processes = str(min(os.cpu_count() or 1, 8))

    def source(self, preset: str, cases: int) -> Path:
        """Synthetic patients in the paper's layout (``nnunet_ppm synth``), one folder per preset."""
        folder = self.work / f"source_{preset}"
        if not folder.is_dir():  # synth assembles the folder elsewhere and moves it into place when complete
            self.steps.run(f"generate {cases} synthetic CTs ({preset} preset)",
                           ["nnunet_ppm", "synth", folder, "--cases", cases, "--preset", preset, "--layout", "roi",
                            "-np", self.processes])
        return folder

    def dataset(self, dataset_id: int, preset: str, cases: int, roi: bool, test_cases: int,
                ppm_patch: Optional[Sequence[int]], ppm_batch: int) -> Path:
        """The raw dataset folder of ``cases`` synthetic patients (whole CTs or per-kidney ROIs), converted and
        planned by nnU-Net and by ``nnunet_ppm plan`` (reused if done)."""
        raw = sorted(Path(self.env["nnUNet_raw"]).glob(f"Dataset{dataset_id:03d}_*"))
        if raw and (Path(self.env["nnUNet_preprocessed"]) / raw[0].name / "nnUNetPPMPlans.json").is_file():
            print(f"reusing the prepared dataset {raw[0]}", flush=True)
            return raw[0]
        self.steps.run(f"convert to an nnU-Net raw dataset{' of per-kidney ROIs' if roi else ''}",
                       ["nnunet_ppm", "convert", "roi", self.source(preset, cases), "-d", dataset_id, "--test-cases", test_cases,
                        "--overwrite", "-np", self.processes] + (["--roi"] if roi else []))
        self.steps.run("nnU-Net fingerprint, plans and preprocessing",
                       ["nnUNetv2_plan_and_preprocess", "-d", dataset_id, "-c", "3d_fullres", "-np", self.processes,
                        "-npfp", self.processes])
        self.steps.run("nnUNetPPMPlans and preprocessing",
                       ["nnunet_ppm", "plan", "-d", dataset_id, "--batch-size", ppm_batch, "-np", self.processes]
                       + (["--patch", *ppm_patch] if ppm_patch else []))
        return next(Path(self.env["nnUNet_raw"]).glob(f"Dataset{dataset_id:03d}_*"))
