"""One experiment, at any size: whole CTs -> datasets -> atlases -> training -> held-out whole CTs end to end.

    source whole CTs (generated, painted onto real label maps, or a real KiTS folder)
    -> two nnU-Net raw datasets of the same patients, the same held out (imagesTs/labelsTs: whole CTs):
       whole CTs (default nnU-Net's data) and per-kidney ROIs (the paper's data, `convert --roi`)
    -> nnU-Net plans and preprocessing of both, nnUNetPPMPlans of the ROIs
    -> atlases from the training CTs (`nnunet_ppm atlas build`)
    -> each method trained (`nnUNetv2_train`) on its dataset
    -> kidney boxes of the held-out CTs (`nnunet_ppm localize`, once for every ROI method)
    -> held-out whole CTs predicted: ROI methods with `predict-ct --boxes`, whole-CT ones with `nnUNetv2_predict`
    -> `nnunet_ppm leaderboard` against the reference method.

`nnunet_ppm demo` runs it with two methods (and the smoke run the tests share);
benchmarks/learning_curve.py with the five cells of the paper's comparison and
checkpoints along the way. Every step is a command a user can run; its output
goes to WORK/logs/, the command lines to WORK/commands.sh (:class:`StepRunner`).
"""
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from nnunet_ppm.measured_run import MeasuredRun, run_measured

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
TEST_IMAGES, TEST_LABELS = "imagesTs", "labelsTs"
MAX_ATLASES = 8  # the paper's


@dataclass(frozen=True)
class Method:
    """One trained model and how its held-out predictions are made.

    ``on_rois``: trained on the per-kidney ROIs and predicted with `predict-ct` (atlas boxes, crop, paste
    back); otherwise trained on whole CTs and predicted with `nnUNetv2_predict`. ``crf_lcc``: `predict-ct`
    with the paper's CRF + largest component (only for ROI methods).
    """

    name: str
    trainer: str
    plans: str
    on_rois: bool
    crf_lcc: bool = False

    @property
    def model(self) -> tuple:
        """What identifies the trained model: methods that differ only in post-processing share it."""
        return self.trainer, self.plans, self.on_rois

    @property
    def folder_name(self) -> str:
        """The name as a folder name: runs of anything but letters, digits, '.' and '-' become one '_'."""
        return re.sub(r"[^\w.-]+", "_", self.name).strip("_")


def nnunet_environment(out: Path, own_folders: bool = False) -> Dict[str, str]:
    """os.environ with nnU-Net's three folders inside `out` (where the user has not set them, or always with
    ``own_folders``), and this Python's console scripts first on PATH, so that every step finds nnUNetv2_* and
    nnunet_ppm of this environment also when it is not activated."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for name in NNUNET_FOLDERS:
        if own_folders or not env.get(name):
            env[name] = str(out / name)
            Path(env[name]).mkdir(parents=True, exist_ok=True)
    env.setdefault("nnUNet_def_n_proc", str(min(os.cpu_count() or 1, 4)))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class StepRunner:
    """Runs commands one after the other, logging each, and stops with a clear message on failure; each command's
    time and peak memory (:mod:`nnunet_ppm.measured_run`) are in ``last_run`` after it."""

    def __init__(self, out: Path, env: Dict[str, str], total: int):
        self.out, self.env, self.total, self.done = out, env, total, 0
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.commands = out / "commands.sh"
        if not self.commands.is_file():
            self.commands.write_text("#!/usr/bin/env bash\n# the commands that ran, in order\nset -e\n"
                                     + "".join(f"export {n}={shlex.quote(env[n])}\n" for n in NNUNET_FOLDERS),
                                     encoding="utf-8")
        self.timings: List[str] = []
        self.last_run: Optional[MeasuredRun] = None  # the last command's time, peak memory and output lines

    def run(self, title: str, command: Sequence, extra_env: Optional[Dict[str, str]] = None) -> str:
        self.done += 1
        command = [str(c) for c in command]
        words = re.sub(r"[^\w+-]+", "_", " ".join(title.split()[:4])).strip("_")
        log = self.logs / f"{len(list(self.logs.glob('*.log'))) + 1:02d}_{words}.log"
        print(f"[{self.done}/{self.total}] {title}\n        $ {shlex.join(command)}", flush=True)
        with self.commands.open("a", encoding="utf-8") as f:
            f.write(" ".join(f"{k}={v}" for k, v in (extra_env or {}).items()) + (" " if extra_env else "")
                    + shlex.join(command) + "\n")
        result = self.last_run = run_measured(command, env={**self.env, **(extra_env or {})})
        log.write_text(result.stdout, encoding="utf-8")
        self.timings.append(f"| {self.done} | {title} | {result.seconds:.0f} s |")
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-25:])
            raise SystemExit(f"step {self.done} ({title}) failed with exit code {result.returncode}; "
                             f"full output in {log}\n{tail}")
        print(f"        done in {result.seconds:.0f} s (log: {log.relative_to(self.out)})", flush=True)
        return result.stdout


@dataclass(frozen=True)
class Datasets:
    """The experiment's two nnU-Net datasets of the same patients, with the same held-out patients."""

    whole_ct: Path  # raw dataset folder: whole CTs
    rois: Path  # raw dataset folder: per-kidney ROIs for training, held-out whole CTs in imagesTs

    @property
    def test_images(self) -> Path:
        return self.whole_ct / TEST_IMAGES

    @property
    def test_labels(self) -> Path:
        return self.whole_ct / TEST_LABELS

    def of(self, method: Method) -> Path:
        return self.rois if method.on_rois else self.whole_ct


class Experiment:
    """The steps of one experiment in `work` (nnU-Net's folders from `env`), run as commands by `steps`.

    A step whose result `work` already holds (from an earlier, interrupted or finished run) is skipped with a
    note: the benchmarks rerun cheaply, and a step's result only exists once its command has succeeded.
    """

    def __init__(self, work: Path, env: Dict[str, str], steps: StepRunner, processes: int = 1):
        self.work, self.env, self.steps, self.processes = work, env, steps, str(processes)

    def run_step(self, title: str, command: Sequence, result: Path, done: Optional[bool] = None,
             extra_env: Optional[Dict[str, str]] = None) -> None:
        """Run a step unless its `result` is there already (``done``: whether it is; default: it exists)."""
        if result.exists() if done is None else done:
            self.steps.done += 1
            print(f"[{self.steps.done}/{self.steps.total}] {title}: reusing {result}", flush=True)
            return
        self.steps.run(title, command, extra_env)

    def generate(self, cases: int, seed: int, preset: str) -> Path:
        """Synthetic patients (whole CTs) in the paper's patient-folder layout: WORK/source_<preset>."""
        source = self.work / f"source_{preset}"
        self.run_step(f"generate {cases} synthetic CTs", ["nnunet_ppm", "synth", source, "--cases", cases, "--seed", seed,
                                                       "--preset", preset, "--layout", "roi", "-np", self.processes],
                  source)
        return source

    def paint(self, label_maps: Sequence[Path], seed: int, min_spacing_mm: float) -> Path:
        """CTs painted onto real label maps coarsened to >= `min_spacing_mm`, KiTS19 layout: WORK/source_painted."""
        source = self.work / "source_painted"
        self.run_step(f"paint {len(label_maps)} CTs onto real label maps",
                  ["nnunet_ppm", "synth", source, "--labels-from", *label_maps, "--seed", seed, "--layout", "kits19",
                   "--min-spacing", min_spacing_mm, "-np", self.processes], source)
        return source

    def convert(self, source: Path, layout: str, dataset_id: int, test_cases: int, roi_size: Optional[str] = None,
                split_seed: int = 0) -> Path:
        """One raw dataset of `source`: whole CTs, or with `roi_size` per-kidney ROIs (held-out patients are
        whole CTs in imagesTs either way; the same `test_cases` and `split_seed` hold out the same patients)."""
        command = ["nnunet_ppm", "convert", layout, source, "-d", dataset_id, "-np", self.processes, "--test-cases",
                   test_cases, "--split-seed", split_seed]
        if roi_size:
            command += ["--roi", "--roi-size", roi_size, "--keep-healthy"]
        existing = sorted(Path(self.env["nnUNet_raw"]).glob(f"Dataset{dataset_id:03d}_*/dataset.json"))
        self.run_step(f"convert: {'per-kidney ROIs' if roi_size else 'whole CTs'}", command,
                  existing[0] if existing else source, done=bool(existing))
        return raw_dataset(self.env, dataset_id)

    def prepare(self, source: Path, layout: str, dataset_id: int, test_cases: int, roi_size: str,
                ppm_batch_size: int, ppm_patch: Optional[Sequence[int]]) -> Datasets:
        """Whole-CT dataset `dataset_id` and ROI dataset `dataset_id + 1` of `source`, planned and preprocessed."""
        datasets = Datasets(self.convert(source, layout, dataset_id, test_cases),
                            self.convert(source, layout, dataset_id + 1, test_cases, roi_size))
        self.plan_nnunet(datasets.whole_ct, datasets.rois)
        self.plan_ppm(datasets.rois, ppm_batch_size, ppm_patch)
        return datasets

    def plan_nnunet(self, *raw_folders: Path) -> None:
        """nnU-Net's fingerprint, plans and preprocessing (3d_fullres) of the raw datasets."""
        plans = Path(self.env["nnUNet_preprocessed"]) / raw_folders[-1].name / "nnUNetPlans_3d_fullres"
        self.run_step("nnU-Net fingerprint, plans and preprocessing",
                  ["nnUNetv2_plan_and_preprocess", "-d", *map(dataset_id, raw_folders), "-c", "3d_fullres",
                   "--verify_dataset_integrity", "-np", self.processes, "-npfp", self.processes], plans)

    def plan_ppm(self, raw_folder: Path, batch_size: int, patch: Optional[Sequence[int]]) -> None:
        """nnUNetPPMPlans (`nnunet_ppm plan`) of a dataset nnU-Net has planned, and its preprocessing."""
        preprocessed = Path(self.env["nnUNet_preprocessed"]) / raw_folder.name / "nnUNetPPMPlans_3d_fullres"
        self.run_step("nnUNetPPMPlans and preprocessing", ["nnunet_ppm", "plan", "-d", dataset_id(raw_folder),
                                                        "--batch-size", batch_size, "-np", self.processes]
                  + (["--patch", *patch] if patch else []), preprocessed)

    def build_atlases(self, datasets: Datasets) -> Path:
        """Atlases from the whole-CT dataset's training CTs (never a held-out one): WORK/atlases."""
        atlases = self.work / "atlases"
        training_cts = len(list((datasets.whole_ct / "labelsTr").glob("*.nii.gz")))
        self.run_step("atlases from the training CTs",
                  ["nnunet_ppm", "atlas", "build", "-d", datasets.whole_ct, "-o", atlases, "-n",
                   min(MAX_ATLASES, training_cts), "--disable_progress_bar"], atlases)
        return atlases

    @staticmethod
    def training_title(method: Method) -> str:
        return f"train {method.trainer} on {method.plans} ({'ROIs' if method.on_rois else 'whole CTs'})"

    def model_folder(self, datasets: Datasets, method: Method) -> Path:
        return (Path(self.env["nnUNet_results"]) / datasets.of(method).name
                / f"{method.trainer}__{method.plans}__3d_fullres")

    def train(self, datasets: Datasets, method: Method, device: str, fold: str = "0",
              extra_env: Optional[Dict[str, str]] = None) -> Path:
        """`nnUNetv2_train` of `method` on its dataset; returns the model folder."""
        model = self.model_folder(datasets, method)
        self.run_step(self.training_title(method),
                  ["nnUNetv2_train", dataset_id(datasets.of(method)), "3d_fullres", fold, "-tr", method.trainer,
                   "-p", method.plans, "-device", device], model / f"fold_{fold}" / "checkpoint_final.pth",
                  extra_env=extra_env)
        return model

    def localize(self, datasets: Datasets, atlases: Path) -> Path:
        """Kidney boxes of the held-out CTs from the atlases: WORK/boxes.json (shared by every ROI method)."""
        boxes = self.work / "boxes.json"
        self.run_step("locate the kidneys of the held-out CTs",
                  ["nnunet_ppm", "localize", "-i", datasets.test_images, "-o", boxes, "--atlases", atlases,
                   "--disable_progress_bar"], boxes)
        return boxes

    def predict(self, datasets: Datasets, method: Method, out: Path, device: str, processes: int,
                boxes: Optional[Path] = None, fold: str = "0", checkpoint: Optional[str] = None,
                images: Optional[Path] = None, localizer: Optional[Sequence] = None, mirroring: bool = True) -> Path:
        """The held-out whole CTs (or those of folder `images`) predicted end to end by `method` into `out` (reused
        when every CT is there; else the command's time and peak memory are in ``self.steps.last_run`` after it).
        An ROI method's CTs are localised by `localizer` (predict-ct's options, e.g. ``["--atlases", folder]``) or
        else read from `boxes`. ``mirroring=False``: no test-time mirroring (``--disable_tta``)."""
        images = images or datasets.test_images
        common = ["-i", images, "-o", out, "-d", dataset_id(datasets.of(method)), "-c", "3d_fullres",
                  "-f", fold, "-tr", method.trainer, "-p", method.plans, "-device", device, "-npp", processes,
                  "-nps", processes] + (["-chk", checkpoint] if checkpoint else []) + ([] if mirroring else ["--disable_tta"])
        if method.on_rois:
            localizer = localizer or (["--boxes", boxes] if boxes else None)
            if localizer is None:
                raise ValueError(f"{method.name}: an ROI method needs the kidney boxes (Experiment.localize) or "
                                 f"predict-ct's localiser options")
            command = ["nnunet_ppm", "predict-ct", *common, *localizer, "--disable_progress_bar"]
            if not method.crf_lcc:
                command += ["--no-crf", "--no-lcc"]
        else:
            command = ["nnUNetv2_predict", *common, "--disable_progress_bar"]
        cases = [p.name[: -len("_0000.nii.gz")] for p in sorted(images.glob("*_0000.nii.gz"))]
        self.run_step(f"predict the held-out CTs: {method.name}" + (f" ({checkpoint})" if checkpoint else ""), command,
                  out, done=all((out / f"{case}.nii.gz").is_file() for case in cases))
        return out

    def leaderboard(self, datasets: Datasets, predictions: Dict[str, Path], reference: str, out: Path) -> Path:
        """`nnunet_ppm leaderboard` of the held-out whole CTs against the `reference` method.

        The labels come from the ROI dataset's dataset.json: its conversion record (ROIs cut from these sources,
        the held-out patients kept whole) is what tells the leaderboard that the scores are end to end on whole
        CTs, whatever the source layout."""
        self.steps.run("leaderboard on the held-out whole CTs",
                       ["nnunet_ppm", "leaderboard", "-ref", datasets.test_labels, "-i", datasets.test_images,
                        "-dj", datasets.rois / "dataset.json", "-o", out, "--reference", reference,
                        "--pred", *[f"{name}={folder}" for name, folder in predictions.items()]])
        return out


def raw_dataset(env: Dict[str, str], dataset_id: int) -> Path:
    """The raw folder of dataset `dataset_id` under env's nnUNet_raw."""
    found = sorted(Path(env["nnUNet_raw"]).glob(f"Dataset{dataset_id:03d}_*"))
    if not found:
        raise FileNotFoundError(f"no Dataset{dataset_id:03d}_* in {env['nnUNet_raw']}")
    return found[0]


def dataset_id(raw_folder: Path) -> int:
    """The id of an nnU-Net raw dataset folder (Dataset501_Name -> 501)."""
    return int(raw_folder.name[len("Dataset"):].split("_")[0])
