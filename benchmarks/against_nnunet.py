"""benchmarks/whole_ct.py --against-nnunet: `nnunet_ppm predict-ct` end to end against `nnUNetv2_predict` of a
default nnU-Net model, on the same whole CTs, in the same run, on the same device, with the same settings.

Both models are plumbing models without test-time mirroring (nnunet_ppm/training/variants.py): their time per CT
is that of their networks, their labels mean nothing, and the CRF runs on a plumbing model's (uncertain)
probabilities. Default nnU-Net is nnUNetTrainer_untrained (nnU-Net's network with its initial weights: training
nnUNetTrainer_debug on these whole CTs grew past 9 GB on a CPU and was killed for memory) on nnU-Net's plans of the atlas group's whole CTs; predict-ct is
PPMTrainer_debug (2 epochs of 2 iterations) on the ROIs of the same CTs, with the atlases, CRF and largest
component. Each command runs once through :class:`Experiment.predict`
(-npp 1 -nps 1, as step 5 of the benchmark); its wall time and peak memory come from
:mod:`nnunet_ppm.measured_run`. Stages per CT:

* predict-ct: OUT/<case>.json "seconds" (localisation, cropping, the ROIs' preprocessing, sliding window,
  resampling, CRF, largest component, paste back and write);
* nnU-Net: from the times at which nnUNetv2_predict printed its own progress lines: "preprocessing" is how long its
  network loop waited for the case (from the previous "done with" line, or for the first case from "There are N
  cases that I would like to predict", to "Predicting <case>:"), "sliding window" from there to "done with <case>"
  (includes nnU-Net's wait for a busy export worker). Resampling and writing run in its export workers and are not
  split out: they are in the rest.

"rest" is the wall time per CT not in a stage: start-up (imports, model loading, worker processes), and what ran
in workers after the network loop; it is negative where stages overlapped in worker processes.
"""
import json
import shutil
from pathlib import Path
from statistics import mean
from typing import Dict, List, Optional, Sequence

from results import Table

from nnunet_ppm.experiment import Datasets, Experiment, Method
from nnunet_ppm.measured_run import MeasuredRun

NNUNET = Method("default nnU-Net", "nnUNetTrainer_untrained", "nnUNetPlans", on_rois=False)
PREDICT_CT = Method("predict-ct", "PPMTrainer_debug", "nnUNetPPMPlans", on_rois=True, crf_lcc=True)
# (row, predict-ct's key in OUT/<case>.json "seconds", nnU-Net's key from its progress lines)
STAGES = (("localise (atlas registration)", "localization", None),
          ("crop the ROIs", "cropping", None),
          ("preprocessing (network loop's wait)", "roi_preprocessing", "preprocessing"),
          ("network: sliding window", "roi_sliding_window", "sliding_window"),
          ("resampling to the ROI", "roi_resampling", None),
          ("CRF (plumbing model's probabilities)", "roi_crf", None),
          ("largest component", "roi_largest_component", None),
          ("paste back, write, report", "paste_and_write", None))
MIB = 2 ** 20
PROCESSES = 1  # -npp and -nps of both commands


def title(cases: Sequence[str], phase: str, orientation: Optional[str], spacing: float) -> str:
    """The recorded table's title: what ran, on what."""
    return (f"Whole CT against default nnU-Net (benchmarks/whole_ct.py --against-nnunet --predict-cases {len(cases)} "
            f"--phase {phase}" + (f" --orientation {orientation}" if orientation else "")
            + f": {len(cases)} CTs painted onto KiTS19 labels ({', '.join(cases)}) at >= {spacing:g} mm; "
            f"`predict-ct --atlases` (PPMTrainer_debug "
            f"ROI model, CRF + largest component) against `nnUNetv2_predict` (nnUNetTrainer_untrained: nnU-Net's "
            f"initial weights, plans of the atlas group's whole CTs); plumbing models, both without test-time mirroring, -npp {PROCESSES} "
            f"-nps {PROCESSES}, one after the other in the same run; stages: benchmarks/against_nnunet.py)")


def nnunet_case_seconds(run: MeasuredRun) -> Dict[str, Dict[str, float]]:
    """{case: {"preprocessing", "sliding_window"}} from the times of nnUNetv2_predict's progress lines."""
    seconds: Dict[str, Dict[str, float]] = {}
    last: Optional[float] = None
    for at, line in run.line_times:
        line = line.strip()
        if "cases that I would like to predict" in line or line.startswith("done with "):
            last = at
        if line.startswith("Predicting ") and line.endswith(":"):
            if last is None:
                raise ValueError(f"nnUNetv2_predict's output: {line!r} before any case list")
            case, started = line[len("Predicting "):-1], at
            seconds[case] = {"preprocessing": round(started - last, 3)}
        if line.startswith("done with "):
            seconds[line[len("done with "):]]["sliding_window"] = round(at - started, 3)
    return seconds


def default_nnunet_model(experiment: Experiment, datasets: Datasets, device: str) -> Path:
    """nnU-Net's plans of the whole CTs of `datasets` and NNUNET trained on them (reused when there); the model folder."""
    experiment.plan_nnunet(datasets.whole_ct)
    return experiment.train(datasets, NNUNET, device, extra_env={"nnUNet_n_proc_DA": "0"})


def output_folder(experiment: Experiment, method: Method) -> Path:
    return experiment.work / "against_nnunet" / method.folder_name


def predicted(experiment: Experiment, datasets: Datasets, method: Method, images: Path, device: str,
              localizer: Sequence) -> MeasuredRun:
    """`method`'s prediction of the CTs in `images`, run now (an earlier run's output is removed first)."""
    out = output_folder(experiment, method)
    shutil.rmtree(out, ignore_errors=True)
    experiment.predict(datasets, method, out, device, PROCESSES, images=images, localizer=localizer)
    return experiment.steps.last_run


def compare(experiment: Experiment, datasets: Datasets, images: Path, device: str, localizer: Sequence) -> Table:
    """Both methods on the CTs of `images`; the table of stages (mean s per CT, each CT's), peak memory, ratios."""
    default_nnunet_model(experiment, datasets, device)
    table = Table(["stage (s per CT unless stated)", "predict-ct: each CT", "predict-ct: mean",
                   "default nnU-Net: each CT", "default nnU-Net: mean", "nnU-Net / predict-ct"])  # load at the start
    runs = {method: predicted(experiment, datasets, method, images, device, localizer)
            for method in (PREDICT_CT, NNUNET)}
    out = output_folder(experiment, PREDICT_CT)
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in images.glob("*_0000.nii.gz"))
    ours = {case: json.loads((out / f"{case}.json").read_text(encoding="utf-8"))["seconds"] for case in cases}
    theirs = nnunet_case_seconds(runs[NNUNET])
    if sorted(theirs) != cases:
        raise ValueError(f"nnUNetv2_predict's progress lines name {sorted(theirs)}, expected {cases}")
    sums = {PREDICT_CT: [0.0] * len(cases), NNUNET: [0.0] * len(cases)}
    for title, our_key, their_key in STAGES:
        mine = [ours[case].get(our_key, 0.0) for case in cases]
        other = [theirs[case][their_key] for case in cases] if their_key else None
        sums[PREDICT_CT] = [a + b for a, b in zip(sums[PREDICT_CT], mine)]
        if other:
            sums[NNUNET] = [a + b for a, b in zip(sums[NNUNET], other)]
        table.add(_row(title, mine, other))
    walls = {method: run.seconds / len(cases) for method, run in runs.items()}
    table.add(["rest (start-up, model loading, export tail; negative: overlap in workers)", "-",
               f"{walls[PREDICT_CT] - mean(sums[PREDICT_CT]):.1f}", "-",
               f"{walls[NNUNET] - mean(sums[NNUNET]):.1f}", "-"])
    table.add(["**end to end** (command's wall time / CTs)", "-", f"{walls[PREDICT_CT]:.1f}", "-",
               f"{walls[NNUNET]:.1f}", f"**{walls[NNUNET] / walls[PREDICT_CT]:.2f}x**"])
    for title, measure in (("peak RSS, largest single process (MiB, kernel's ru_maxrss)", "peak_rss_bytes"),
                           ("peak PSS, process tree summed (MiB, sampled every 0.2 s)", "peak_tree_pss_bytes")):
        mine, other = getattr(runs[PREDICT_CT], measure) / MIB, getattr(runs[NNUNET], measure) / MIB
        table.add([title, "-", f"{mine:.0f}", "-", f"{other:.0f}", f"{other / mine:.2f}" if mine else "-"])
    return table


def _row(title: str, mine: List[float], other: Optional[List[float]]) -> List[str]:
    """A stage's row: each CT's seconds and their mean for both methods, and nnU-Net's mean over predict-ct's."""
    each = lambda values: ", ".join(f"{v:.1f}" for v in values)  # noqa: E731
    ratio = f"{mean(other) / mean(mine):.1f}x" if other and mean(mine) > 0 else "-"
    return [title, each(mine), f"{mean(mine):.1f}", each(other) if other else "-",
            f"{mean(other):.1f}" if other else "-", ratio]
