"""Run real nnU-Net / nnunet_ppm commands from tests, and build the tiny synthetic dataset they share."""
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Sequence

BIN = Path(sys.executable).parent
TINY_DATASET_ID = 900  # the smoke run's whole-CT dataset
TINY_ROI_DATASET_ID = TINY_DATASET_ID + 1  # its ROI dataset, the tiny_dataset fixture's


def command_env(root: Path, **extra: str) -> Dict[str, str]:
    """os.environ with nnU-Net's folders under `root` and few worker processes (a 2-core CI machine)."""
    env = dict(os.environ)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (root / name).mkdir(parents=True, exist_ok=True)
        env[name] = str(root / name)
    env.update(nnUNet_def_n_proc="1", nnUNet_compile="false", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    env.update(extra)
    return env


def run_command(args: Sequence[str], env: Dict[str, str], cwd: Path = None) -> subprocess.CompletedProcess:
    """Run a console script of this environment; fail the test with the end of its output if it fails."""
    result = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], env=env, cwd=cwd, capture_output=True,
                            text=True, encoding="utf-8", errors="replace")
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited with {result.returncode}\n"
                             f"--- stdout (end) ---\n{result.stdout[-4000:]}\n--- stderr (end) ---\n{result.stderr[-4000:]}")
    return result


def kill_when(args: Sequence[str], env: Dict[str, str], ready: Callable[[], bool], log: Path,
              timeout_s: float = 1200.0) -> None:
    """Start a console script of this environment; SIGKILL it and its children as soon as ``ready()`` is true.

    The command runs in its own process group (as a job of a shell or a batch system), so its worker processes
    die with it. Fails the test if the command ends, or ``timeout_s`` passes, before ``ready()``. Output goes to
    ``log``.
    """
    with open(log, "w", encoding="utf-8") as output:
        process = subprocess.Popen([str(BIN / args[0]), *map(str, args[1:])], env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        try:
            while not ready():
                if process.poll() is not None:
                    raise AssertionError(f"{' '.join(map(str, args))} ended (exit {process.returncode}) before it "
                                         f"could be killed\n{log.read_text(errors='replace')[-4000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{' '.join(map(str, args))}: not ready to be killed after {timeout_s} s")
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass(frozen=True)
class TinyDataset:
    """One dataset of the demo's smoke run (`nnunet_ppm demo --budget smoke`, see demo.BUDGETS): 7 tiny synthetic
    CTs converted twice with the same 2 held-out patients (whole CTs in imagesTs/labelsTs), planned by nnU-Net
    and `nnunet_ppm plan`: the ROI dataset (PPMTrainer_debug on nnUNetPPMPlans, nnUNetTrainer_debug on
    nnUNetPlans; the fixture's dataset) and ``whole_ct`` (nnUNetTrainer_debug on nnUNetPlans). The run's
    atlases, kidney boxes, predictions and leaderboard are in ``demo``."""

    root: Path
    env: Dict[str, str]
    demo: Path
    dataset_id: int = TINY_ROI_DATASET_ID

    @property
    def whole_ct(self) -> "TinyDataset":
        """The smoke run's whole-CT dataset (default nnU-Net's data)."""
        return replace(self, dataset_id=TINY_DATASET_ID)

    @property
    def raw(self) -> Path:
        return next((self.root / "nnUNet_raw").glob(f"Dataset{self.dataset_id:03d}_*"))

    @property
    def preprocessed(self) -> Path:
        return self.root / "nnUNet_preprocessed" / self.raw.name

    def results(self, trainer: str, plans: str) -> Path:
        return self.root / "nnUNet_results" / self.raw.name / f"{trainer}__{plans}__3d_fullres"

    def model(self, trainer: str, plans: str) -> Path:
        """The model folder of one of the demo's trainings on this dataset (fold 0 trained)."""
        folder = self.results(trainer, plans)
        if not (folder / "fold_0" / "checkpoint_final.pth").is_file():
            raise AssertionError(f"the smoke run trained no {trainer} on {plans} (no {folder}/fold_0)")
        return folder


def make_tiny_dataset(root: Path) -> TinyDataset:
    """`nnunet_ppm demo --budget smoke` with nnU-Net's folders under ``root``: datasets TINY_DATASET_ID (whole
    CTs) and TINY_DATASET_ID + 1 (ROIs, returned)."""
    env = command_env(root)
    run_command(["nnunet_ppm", "demo", "--budget", "smoke", "--out", root / "demo", "--dataset-id", TINY_DATASET_ID],
                env)
    return TinyDataset(root, env, root / "demo")


def case_ids(folder: Path, ending: str = ".nii.gz") -> List[str]:
    return sorted(p.name[: -len(ending)] for p in folder.glob(f"*{ending}"))
