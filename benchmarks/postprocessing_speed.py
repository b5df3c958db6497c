"""Benchmark: dense CRF backends and largest component per case, at ROI size and at whole-CT size.

    python benchmarks/postprocessing_speed.py                         # ROI 200x150x150 and a whole CT
    python benchmarks/postprocessing_speed.py --record                # append the tables to benchmarks/RESULTS.md
    python benchmarks/postprocessing_speed.py --probabilities uncertain   # every voxel uncertain (worst case)
    python benchmarks/postprocessing_speed.py --mean-field-only --probabilities network uncertain crafted \
        --noise 0 10 20 30 --record                                   # the CRF per input kind and image noise
    python benchmarks/postprocessing_speed.py --mean-field-only --probabilities trained \
        --trained-rois OUT/rois --noise 0 10 20 30 --record           # a trained model's probabilities

Cases come from nnU-Net-ppm's synthetic CT generator (preset "full": 512 x 512
voxels of 0.6-0.9 mm); the ROI is 200 x 150 x 150 voxels around one kidney.
Probabilities imitate a network: per class, a softmax of ``sharpness * (blurred
one-hot - 0.5)`` plus smooth noise - confident inside organs, uncertain at
their borders ("network"); or the blurred one-hot plus strong voxel noise
("uncertain"), where no voxel is certain. "crafted": an ellipsoid kidney with a
spherical tumor on its surface filling the ROI (one HU per tissue) and the
"uncertain" probabilities of its labels. "trained": a trained ROI model's own
probabilities (``--trained-rois``: the ``rois`` folder of ``nnunet_ppm predict-ct
--keep-rois --save_probabilities``), of the ROI where the model is least sure
(most voxels whose largest probability is below 0.9), the CT crop and its
probabilities resampled (linear) to 200 x 150 x 150 voxels over the same field
of view, as if the model had been trained at that resolution. ``--noise`` adds
Gaussian noise of that many HU to the CT (seeded), before the HU window.

First table: the CRF mean field on the whole ROI, one row per input kind x
image noise: torch and pydensecrf seconds (each in a fresh process; with
``--repeats N`` the median of N runs per backend, alternating), wall and
CPU (both backends use one thread, so on a machine that other jobs share the
CPU seconds say more about the work than the wall seconds), their ratios and
the agreement of the labels. Its probabilities are imitated on the
ROI's labels (the other table's on the whole CT's). On a GPU machine torch runs
on the GPU, timed after one untimed run in its process (CUDA's start-up is paid
once per worker of ``nnunet_ppm predict``, not per ROI), and ``--reference
torch-cpu`` compares it with torch on one CPU thread (pydensecrf is not built
for the GPU machines' Python; benchmarks/gpu/whole_ct.sh).

Second table (not with ``--mean-field-only``; the first probability kind and
noise level): CRF mean field on the whole ROI (the issue's measure: 3 labels, 5
iterations), ``dense_crf`` on the ROI and on the whole CT (foreground boxes,
blocks), the largest component (ROI rule on the ROI, per-side rule on the
CT), and the throughput of ``dense_crf`` (torch backend) over several ROI
cases in 1, 2, ... worker processes (``--workers``; what ``-nps`` buys; the
workers are started and warmed up before the clock starts). Each other row
runs in a fresh process, its imports done before the clock starts: wall and
CPU seconds, and that process's peak resident memory (imports included,
~0.4 GiB). Agreement: fraction of voxels whose label equals pydensecrf's,
overall and among the voxels pydensecrf changed from the argmax.
"""
import argparse
import concurrent.futures
import multiprocessing
import os
import time
from pathlib import Path
from statistics import median
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import SimpleITK as sitk
import torch
from scipy.ndimage import gaussian_filter, zoom

from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_ppm.postprocessing.crf_torch import mean_field_torch
from nnunet_ppm.postprocessing.dense_crf import CRF_BACKENDS, dense_crf
from nnunet_ppm.postprocessing.largest_component import (keep_largest_component, keep_largest_component_per_side,
                                                         left_right_axis)
from results import Table  # benchmarks/ is not a package: the script's folder is on sys.path

ROI_SHAPE = (200, 150, 150)


CRAFTED_SPACING = (0.8, 0.7, 0.7)
HU_BY_LABEL = (-80.0, 180.0, 90.0)  # fat, enhancing kidney, tumor (arterial phase)


def synthetic_ct(seed: int) -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...]]:
    """(CT in HU, labels 0-2, spacing) of a whole synthetic CT with two kidneys."""
    from nnunet_ppm.dataset_conversion.synthesize import synthesize_case

    index = seed
    while True:
        ct, label, spacing = synthesize_case(index, seed=0, preset="full")
        if ct.shape[0] >= ROI_SHAPE[0]:  # thin slices: room for the ROI
            break
        index += 1
    return ct.astype(np.float32), np.where(label == 3, 1, label).astype(np.uint8), spacing


def crafted_roi() -> Tuple[np.ndarray, np.ndarray]:
    """(CT in HU without noise, labels) of a ROI_SHAPE ellipsoid kidney with a spherical tumor on its surface."""
    z, y, x = np.meshgrid(*[(np.arange(n) - n / 2) * s for n, s in zip(ROI_SHAPE, CRAFTED_SPACING)], indexing="ij")
    label = np.zeros(ROI_SHAPE, np.uint8)
    label[(z / 55) ** 2 + (y / 35) ** 2 + (x / 28) ** 2 <= 1] = 1
    label[(z - 15) ** 2 + (y - 20) ** 2 + (x - 12) ** 2 <= 18 ** 2] = 2
    return np.asarray(HU_BY_LABEL, np.float32)[label], label


def with_noise(ct: np.ndarray, noise_hu: float, seed: int) -> np.ndarray:
    """The CT plus Gaussian noise of ``noise_hu`` HU (float32; the CT itself when 0)."""
    if noise_hu == 0:
        return ct
    return (ct + np.random.default_rng(seed).normal(0, noise_hu, ct.shape)).astype(np.float32)


def imitated_probabilities(label: np.ndarray, spacing, seed: int, uncertainty: str = "network") -> np.ndarray:
    """(3, ...) float32 probabilities imitating a network's from labels 0-2 (see the module docstring)."""
    rng = np.random.default_rng(seed)
    probabilities = np.empty((3, *label.shape), np.float32)
    for c in range(3):
        blurred = gaussian_filter((label == c).astype(np.float32), 1.5 / np.asarray(spacing))
        if uncertainty == "network":
            noise = gaussian_filter(rng.normal(0, 1, label.shape).astype(np.float32), 2.0)
            probabilities[c] = 30.0 * (blurred - 0.5) + 20.0 * noise
        else:
            probabilities[c] = np.log(np.clip(blurred + rng.normal(0, 0.3, label.shape), 1e-3, None))
    probabilities -= probabilities.max(0)
    np.exp(probabilities, out=probabilities)
    probabilities /= probabilities.sum(0)
    return probabilities


def trained_roi(rois: Path) -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...], str]:
    """(CT in HU, probabilities, spacing, ROI name) of the ROI of `rois` (predict-ct's kept ROIs with probabilities)
    whose largest probability is below 0.9 in most voxels, both resampled (linear) to ROI_SHAPE over its field of
    view; the probabilities renormalised."""
    candidates = sorted((rois / "predictions").glob("*.npz"))
    if not candidates:
        raise SystemExit(f"no probability files (*.npz) in {rois / 'predictions'}: run nnunet_ppm predict-ct with "
                         f"--keep-rois --save_probabilities and pass its OUT/rois")
    unsure = {path: int((np.load(path)["probabilities"].max(0) < 0.9).sum()) for path in candidates}
    path = max(candidates, key=unsure.get)
    name = path.name[: -len(".npz")]
    image = sitk.ReadImage(str(rois / "images" / f"{name}_0000.nii.gz"))
    ct = sitk.GetArrayFromImage(image).astype(np.float32)
    factors = [target / size for target, size in zip(ROI_SHAPE, ct.shape)]
    probabilities = np.stack([zoom(p.astype(np.float32), factors, order=1) for p in np.load(path)["probabilities"]])
    probabilities = np.clip(probabilities, 0, None)
    probabilities /= probabilities.sum(0)
    spacing = tuple(s / f for s, f in zip(image.GetSpacing()[::-1], factors))
    return zoom(ct, factors, order=1), probabilities, spacing, name


def kidney_roi(label: np.ndarray) -> Tuple[slice, ...]:
    """A ROI_SHAPE box centred on the first kidney (clipped to the image)."""
    import cc3d
    components = cc3d.connected_components(label > 0, connectivity=26)
    centre = cc3d.statistics(components)["centroids"][1]
    starts = [int(np.clip(round(c - n / 2), 0, s - n)) for c, n, s in zip(centre, ROI_SHAPE, label.shape)]
    return tuple(slice(s, s + n) for s, n in zip(starts, ROI_SHAPE))


def _peak_rss_gib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it does not start from the parent's at fork)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 2 ** 20


def _measured(warm_up: bool, function: Callable, *args) -> Dict:
    """Run in a fresh process (after one untimed run with `warm_up`): result, wall and CPU seconds, peak RSS of this
    process."""
    if warm_up:
        function(*args)
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return {"result": result, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "rss_gib": _peak_rss_gib()}


def in_fresh_process(function: Callable, *args, warm_up: bool = False) -> Dict:
    """`function(*args)` timed in a fresh process; `warm_up`: after one untimed call (on a GPU: CUDA's start-up,
    paid once per worker process of `nnunet_ppm predict`, not per ROI)."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measured, warm_up, function, *args).result()


def mean_field(backend: str, probabilities, image, spacing):
    """Labels of one mean field on the whole input: a key of CRF_BACKENDS, or "torch-cpu" (torch on one CPU thread
    even where a GPU is present: the reference on a GPU machine, which lacks pydensecrf)."""
    params = CRFParams()
    image = np.clip(image, *params.hu_window).astype(np.float32)
    if backend == "torch-cpu":
        return mean_field_torch(probabilities, image, spacing, params, torch.device("cpu"))
    return CRF_BACKENDS[backend](probabilities, image, spacing, params)


def boxed_crf(backend: str, probabilities, image, spacing):
    return dense_crf(probabilities, image, spacing, backend=backend)


def seconds_per_case_in_workers(workers: int, cases: int, probabilities, image, spacing) -> float:
    """Wall seconds per case of ``cases`` torch-backend dense_crf calls spread over ``workers`` processes."""
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(boxed_crf, ["torch"] * workers, [probabilities] * workers, [image] * workers,
                      [spacing] * workers))  # start and warm up every worker
        start = time.perf_counter()
        list(pool.map(boxed_crf, ["torch"] * cases, [probabilities] * cases, [image] * cases, [spacing] * cases))
        return (time.perf_counter() - start) / cases


def shape_text(shape) -> str:
    return "x".join(map(str, shape))


def agreement(labels: np.ndarray, reference: np.ndarray, argmax: np.ndarray) -> Tuple[str, str]:
    """Fraction of labels equal to the reference's, overall and where the reference changed the argmax."""
    changed = reference != argmax
    on_changed = f"{np.mean(labels[changed] == reference[changed]):.4f}" if changed.any() else "-"
    return f"{np.mean(labels == reference):.5f}", on_changed


def mean_field_per_input(kinds, noise_levels, ct, label, roi, spacing, seed: int,
                         trained_rois: Optional[Path] = None, repeats: int = 1, reference: str = "pydensecrf") -> Table:
    """Table: torch (on the GPU when present) and `reference` mean field on the whole ROI for every input kind x image
    noise; with `repeats` > 1 each backend runs that many times (alternating, each in a fresh process) and the
    medians are reported."""
    ref = reference
    table = Table(["input", "image noise HU", "voxels", "torch s", f"{ref} s", f"{ref} / torch",
                   "torch CPU s", f"{ref} CPU s", f"{ref} / torch, CPU", f"agreement with {ref}",
                   f"agreement where {ref} changed the argmax", f"voxels {ref} changed"])
    for kind in kinds:
        row_kind = kind
        if kind == "trained":
            clean_ct, probabilities, roi_spacing, name = trained_roi(trained_rois)
            row_kind = f"trained ({name})"
        else:
            if kind == "crafted":
                clean_ct, roi_label = crafted_roi()
                roi_spacing, probability_kind = CRAFTED_SPACING, "uncertain"
            else:
                clean_ct, roi_label = np.ascontiguousarray(ct[roi]), np.ascontiguousarray(label[roi])
                roi_spacing, probability_kind = spacing, kind
            probabilities = imitated_probabilities(roi_label, roi_spacing, seed, probability_kind)
        argmax = probabilities.argmax(0)
        for noise_hu in noise_levels:
            image = with_noise(clean_ct, noise_hu, seed)
            runs = {"torch": [], ref: []}
            for _ in range(repeats):
                for backend, measured in runs.items():  # alternating, so that a change of load meets both backends
                    measured.append(in_fresh_process(mean_field, backend, probabilities, image, roi_spacing,
                                                     warm_up=backend == "torch" and torch.cuda.is_available()))
            seconds = {backend: median(run["wall"] for run in measured) for backend, measured in runs.items()}
            cpu = {backend: median(run["cpu"] for run in measured) for backend, measured in runs.items()}
            labels = {backend: measured[0]["result"] for backend, measured in runs.items()}  # the same every run
            table.add([row_kind, f"{noise_hu:g}", shape_text(image.shape), f"{seconds['torch']:.2f}",
                       f"{seconds[ref]:.2f}", f"{seconds[ref] / seconds['torch']:.1f}",
                       f"{cpu['torch']:.2f}", f"{cpu[ref]:.2f}", f"{cpu[ref] / cpu['torch']:.1f}",
                       *agreement(labels["torch"], labels[ref], argmax), str(int((labels[ref] != argmax).sum()))])
    return table


def largest_component(labels, lr_axis):
    return keep_largest_component(labels) if lr_axis is None else keep_largest_component_per_side(labels, lr_axis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["pydensecrf", "torch"])
    parser.add_argument("--probabilities", nargs="+", choices=("network", "uncertain", "crafted", "trained"),
                        default=["network"], help="input kinds of the mean-field table (the other table: the first)")
    parser.add_argument("--trained-rois", type=Path, default=None, metavar="ROIS",
                        help="for --probabilities trained: OUT/rois of predict-ct --keep-rois --save_probabilities")
    parser.add_argument("--noise", nargs="+", type=float, default=[0.0],
                        help="image noise levels in HU of the mean-field table (the other table: the first)")
    parser.add_argument("--mean-field-only", action="store_true", help="only the mean-field table")
    parser.add_argument("--reference", choices=("pydensecrf", "torch-cpu"), default="pydensecrf",
                        help="what the mean-field table compares torch with (torch-cpu: torch on one CPU thread, "
                             "for a GPU machine without pydensecrf)")
    parser.add_argument("--no-whole-ct", action="store_true", help="only the ROI rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, os.cpu_count()],
                        help="worker-process counts for the parallel-cases rows (none: skip them)")
    parser.add_argument("--parallel-cases", type=int, default=4, help="ROI cases per parallel-cases row")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per backend and row of the mean-field table, alternating; the median is reported")
    parser.add_argument("--record", action="store_true", help="append the tables to benchmarks/RESULTS.md")
    parser.add_argument("--note", default="", help="added to the recorded titles after a comma (e.g. an uncommitted "
                                                       "change, the CPU model)")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if "trained" in args.probabilities and args.trained_rois is None:
        parser.error("--probabilities trained needs --trained-rois")
    if args.mean_field_only and set(args.probabilities) <= {"crafted", "trained"}:
        ct = label = roi = spacing = None
    else:
        ct, label, spacing = synthetic_ct(args.seed)
        roi = kidney_roi(label)
    mean_field_table = mean_field_per_input(args.probabilities, args.noise, ct, label, roi, spacing, args.seed,
                                            args.trained_rois, args.repeats, args.reference)
    note = f", {args.note}" if args.note else ""
    if args.record:
        repeats = f", median of {args.repeats} runs per backend" if args.repeats > 1 else ""
        where = "one CPU thread each" if device.type == "cpu" else f"torch on the GPU, {args.reference} on one CPU thread"
        mean_field_table.record("CRF mean field per input kind and image noise (benchmarks/postprocessing_speed.py, "
                                f"{shape_text(ROI_SHAPE)} ROI, 3 labels, 5 iterations, {where}{repeats}"
                                f"{note})", device)
    if args.mean_field_only:
        return
    kind, noise_hu = args.probabilities[0], args.noise[0]
    if kind in ("crafted", "trained"):
        raise SystemExit("the per-step table needs a synthetic CT: put network or uncertain first")
    ct = with_noise(ct, noise_hu, args.seed)
    probabilities = imitated_probabilities(label, spacing, args.seed, kind)
    table = Table(["step", "size", "voxels", "backend", "wall s", "CPU s", "process max RSS GiB",
                   "agreement with pydensecrf", "agreement where pydensecrf changed the argmax"])
    roi_p, roi_ct = np.ascontiguousarray(probabilities[(slice(None), *roi)]), np.ascontiguousarray(ct[roi])
    print(f"whole CT {shape_text(ct.shape)} at {spacing} mm, ROI {shape_text(roi_ct.shape)}, "
          f"probabilities: {kind}, image noise {noise_hu:g} HU", flush=True)

    reference = {}
    argmax = {"ROI": roi_p.argmax(0), "CT": probabilities.argmax(0)}
    runs = [("mean field, whole ROI", "ROI", mean_field, (roi_p, roi_ct, spacing)),
            ("dense_crf (boxes)", "ROI", boxed_crf, (roi_p, roi_ct, spacing))]
    if not args.no_whole_ct:
        runs.append(("dense_crf (boxes)", "CT", boxed_crf, (probabilities, ct, spacing)))
    for what, size, function, inputs in runs:
        for backend in args.backends:
            measured = in_fresh_process(function, backend, *inputs)
            labels = measured["result"]
            key = (what, size)
            reference.setdefault(key, labels)
            table.add([what, size, shape_text(inputs[1].shape), backend, f"{measured['wall']:.2f}",
                       f"{measured['cpu']:.2f}", f"{measured['rss_gib']:.2f}",
                       *agreement(labels, reference[key], argmax[size])])
    component_runs = [("largest component", "ROI", argmax["ROI"].astype(np.uint8), None)]
    if not args.no_whole_ct:
        axial_identity = (1, 0, 0, 0, 1, 0, 0, 0, 1)  # synthesize_case's canonical order: x is array axis 2
        component_runs.append(("largest component per side", "CT", argmax["CT"].astype(np.uint8),
                               left_right_axis(axial_identity)))
    for what, size, labels, lr_axis in component_runs:
        measured = in_fresh_process(largest_component, labels, lr_axis)
        table.add([what, size, shape_text(labels.shape), "cc3d", f"{measured['wall']:.2f}", f"{measured['cpu']:.2f}",
                   f"{measured['rss_gib']:.2f}", "-", "-"])

    for workers in args.workers:
        seconds = seconds_per_case_in_workers(workers, args.parallel_cases, roi_p, roi_ct, spacing)
        table.add([f"dense_crf, {args.parallel_cases} ROI cases in {workers} processes", "ROI",
                   shape_text(roi_ct.shape), "torch", f"{seconds:.2f} per case", "-", "-", "-", "-"])

    if args.record:
        table.record(f"Post-processing per case (benchmarks/postprocessing_speed.py, {kind} probabilities, "
                     f"image noise {noise_hu:g} HU, spacing {tuple(round(s, 2) for s in spacing)} mm"
                     f"{note})", device)

if __name__ == "__main__":
    main()
