"""Synthetic arterial-phase CTs with kidney/tumor labels, written in any source layout.

Python API (what tests and the demo call)::

    from nnunet_ppm.dataset_conversion.synthesize import synthesize
    src = synthesize(tmp_path / "cts", num_cases=2, seed=0, preset="tiny", layout="roi")
    # -> tmp_path/cts/synth_000/image.nii.gz + label.nii.gz, ...

    synthesize(out, labels_from=["/work/shared/data/kits19-labels/case_00061.nii.gz"], layout="kits19")
    # -> out/data/case_00061/imaging.nii.gz + segmentation.nii.gz, the label file kept exactly

In memory: :func:`synthesize_case` (generated geometry) and :func:`paint_case`
(a CT for a given label image). Cases are deterministic in (seed, case index),
whatever the number of workers. Presets:

``tiny``  -- 32-48 slices of 64 x 80 voxels, 3.6-5 mm in-plane, 5-7 mm slices:
           low resolution for CPU tests (plan/preprocess/train in seconds);
``small`` -- 40-96 slices of 192 x 224 voxels, 1.4-2 mm in-plane, 2.5-5 mm slices: the demo;
``full``  -- 512 x 512 voxels of 0.6-0.9 mm, 0.8-5 mm slices: clinical size.

With ``labels_from`` the geometry, spacing and header come from real label maps
(any of IMAGE_FILE_ENDINGS; 0 bg, 1 kidney, 2 tumor, 3 cyst); the preset then only
names the output. ``min_spacing_mm`` first resamples each label map (nearest neighbour)
to at least that spacing per axis, keeping its origin and direction: small, quick CTs
whose kidney shapes, positions and headers are still real. Layouts without a cyst class (roi, kits19) get cysts as
kidney; otherwise the label file is written unchanged.
"""
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import cc3d
import numpy as np
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.case_pool import run_per_case
from nnunet_ppm.dataset_conversion.contrast_phases import check_phase, tissues_in_phase
from nnunet_ppm.dataset_conversion.image_files import file_ending, read_image, write_image
from nnunet_ppm.dataset_conversion.labels import CYST, to_dataset_labels
from nnunet_ppm.dataset_conversion.layouts import case_paths, get_layout
from nnunet_ppm.dataset_conversion.orientation import (AXIAL_DIRECTION, KITS_DIRECTION, anatomical_axes,
                                                       canonical_spacing, from_canonical, to_canonical)
from nnunet_ppm.dataset_conversion.output_folder import staged_folder
from nnunet_ppm.dataset_conversion.roi import kidney_map, sides_from_x
from nnunet_ppm.dataset_conversion.synthetic_anatomy import (Anatomy, KidneyPlacement, fit_anatomy, kidney_label_map,
                                                             sample_anatomy)
from nnunet_ppm.dataset_conversion.synthetic_ct import render_ct

PathLike = Union[str, Path]


@dataclass(frozen=True)
class Preset:
    """Size and resolution of generated cases."""

    in_plane_voxels: Tuple[int, int]  # (y, x)
    in_plane_mm: Tuple[float, float]  # spacing range
    slice_mm: Tuple[float, ...]  # slice thickness choices
    coverage_mm: Tuple[float, float]  # head-foot extent range
    slices: Tuple[int, int]  # slice count range
    tumor_radius_mm: Tuple[float, float]


PRESETS = {
    "tiny": Preset((64, 80), (3.6, 5.0), (5.0, 6.0, 7.0), (220, 280), (32, 48), (10, 24)),
    "small": Preset((192, 224), (1.4, 2.0), (2.5, 3.0, 4.0, 5.0), (200, 240), (40, 96), (8, 30)),
    "full": Preset((512, 512), (0.6, 0.9), (0.8, 1.0, 1.25, 2.5, 3.0, 5.0), (200, 240), (40, 300), (8, 32)),
}


def _case_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index)])


def in_phase(anatomy: Anatomy, phase: str) -> Anatomy:
    """`anatomy` with its tissue values in contrast `phase` (arterial: unchanged)."""
    return replace(anatomy, tissue=tissues_in_phase(anatomy.tissue, phase), phase=phase)


def synthesize_case(index: int, seed: int = 0, preset: str = "tiny",
                    phase: str = "arterial") -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...]]:
    """One generated case in canonical order (z head-wards, y back-wards, x to the left): (CT int16, labels uint8
    0-3, spacing mm), in contrast `phase` (:mod:`.contrast_phases`; the same anatomy in every phase)."""
    settings = PRESETS[preset]
    rng = _case_rng(seed, index)
    half_width = rng.uniform(140, 175)
    body_radii = (half_width * rng.uniform(0.66, 0.8), half_width)
    ny, nx = settings.in_plane_voxels
    pixel = float(np.clip(max(2 * body_radii[1] / nx, 2 * body_radii[0] / ny) * rng.uniform(1.06, 1.18),
                          *settings.in_plane_mm))
    thickness = float(rng.choice(settings.slice_mm))
    nz = int(np.clip(round(rng.uniform(*settings.coverage_mm) / thickness), *settings.slices))
    shape, spacing = (nz, ny, nx), (thickness, pixel, pixel)
    anatomy = in_phase(sample_anatomy(rng, shape, spacing, body_radii), phase)
    label = kidney_label_map(rng, anatomy, shape, spacing, settings.tumor_radius_mm)
    return render_ct(label, spacing, anatomy, rng), label, spacing


def paint_case(label_image: sitk.Image, index: int = 0, seed: int = 0, phase: str = "arterial") -> sitk.Image:
    """A synthetic CT for a real label map: same grid and header, anatomy fitted around its kidneys, in contrast
    `phase`."""
    direction = label_image.GetDirection()
    label = np.ascontiguousarray(to_canonical(sitk.GetArrayViewFromImage(label_image), direction))
    values = np.unique(label)
    if not set(values.tolist()) <= {0, 1, 2, 3}:
        raise ValueError(f"label values {values.tolist()} outside 0 bg, 1 kidney, 2 tumor, 3 cyst")
    label = label.astype(np.uint8)
    spacing = canonical_spacing(label_image.GetSpacing(), direction)
    kidneys, count = kidney_map(label, spacing)
    if count == 0:
        raise ValueError("label map holds no kidney")
    statistics = cc3d.statistics(kidneys)
    centres = [np.asarray(c) * spacing for c in statistics["centroids"][1:]]
    sides = sides_from_x([c[2] for c in centres], (label.shape[2] - 1) * spacing[2] / 2)
    x_range = (min(b[2].start for b in statistics["bounding_boxes"][1:]) * spacing[2],
               max(b[2].stop for b in statistics["bounding_boxes"][1:]) * spacing[2])
    rng = _case_rng(seed, index)
    anatomy = in_phase(fit_anatomy(rng, [KidneyPlacement(c, s) for c, s in zip(centres, sides)], x_range), phase)
    ct = sitk.GetImageFromArray(np.ascontiguousarray(from_canonical(render_ct(label, spacing, anatomy, rng), direction)))
    ct.CopyInformation(label_image)
    return ct


def _image_from_canonical(array: np.ndarray, spacing: Sequence[float], direction: Sequence[float]) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(from_canonical(array, direction)))
    array_spacing = [spacing[canonical] for canonical, _ in anatomical_axes(direction)]
    image.SetSpacing(array_spacing[::-1])
    image.SetDirection(direction)
    return image


def label_files(paths: Sequence[PathLike]) -> List[Path]:
    """Label map files named by `paths`: each a file, or a folder whose image files are taken in name order."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and file_ending(p))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"labels_from: {path} does not exist")
    if not files:
        raise FileNotFoundError(f"labels_from: no label files ({', '.join(('.nii.gz', '.nrrd', '.mha'))} ...) in {', '.join(map(str, paths))}")
    return files


@dataclass(frozen=True)
class SynthJob:
    index: int
    case_id: str
    label_file: Optional[Path]
    seed: int
    preset: str
    layout: str
    root: Path
    ending: str
    min_spacing_mm: Optional[float] = None
    phase: str = "arterial"


def coarse_label_map(label: sitk.Image, min_spacing_mm: float) -> sitk.Image:
    """`label` at spacing max(its own, `min_spacing_mm`) per axis (nearest neighbour), same origin and direction."""
    spacing = [max(s, min_spacing_mm) for s in label.GetSpacing()]
    size = [max(int(round(n * s / t)), 1) for n, s, t in zip(label.GetSize(), label.GetSpacing(), spacing)]
    return sitk.Resample(label, size, sitk.Transform(), sitk.sitkNearestNeighbor, label.GetOrigin(), spacing,
                         label.GetDirection(), 0, label.GetPixelID())


def write_case(job: SynthJob) -> str:
    """Generate or paint one case and write it where `job.layout` keeps it under `job.root`."""
    layout = get_layout(job.layout)
    image_path, label_path = case_paths(layout, job.root, job.case_id, job.ending)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    if job.label_file is None:
        ct, label, spacing = synthesize_case(job.index, job.seed, job.preset, job.phase)
        direction = AXIAL_DIRECTION if layout.name == "roi" else KITS_DIRECTION
        label_image = _image_from_canonical(to_dataset_labels(label, keep_cyst=layout.has_cyst), spacing, direction)
        write_image(_image_from_canonical(ct, spacing, direction), image_path)
    else:
        label_image = read_image(job.label_file)
        if job.min_spacing_mm is not None:
            label_image = coarse_label_map(label_image, job.min_spacing_mm)
        write_image(paint_case(label_image, job.index, job.seed, job.phase), image_path)
        if not layout.has_cyst and np.any(sitk.GetArrayViewFromImage(label_image) == CYST):
            merged = sitk.GetImageFromArray(to_dataset_labels(sitk.GetArrayViewFromImage(label_image), keep_cyst=False))
            merged.CopyInformation(label_image)
            label_image = sitk.Cast(merged, label_image.GetPixelID())
    write_image(label_image, label_path)
    return job.case_id


def _case_id_of(label_file: Path) -> str:
    return label_file.name[: -len(file_ending(label_file))]


def synthesize(out_dir: PathLike, num_cases: Optional[int] = None, seed: int = 0, preset: str = "tiny",
               layout: str = "roi", labels_from: Optional[Sequence[PathLike]] = None, *,
               file_ending: str = ".nii.gz", overwrite: bool = False, num_processes: int = 1,
               progress: bool = True, min_spacing_mm: Optional[float] = None, phase: str = "arterial") -> Path:
    """Write synthetic cases into `out_dir` in `layout` (roi, kits19, kits21, kits23); returns `out_dir`.

    Generated geometry: `num_cases` cases (default 4) of `preset`. With `labels_from` (label files or
    folders of them): one painted CT per label file, the first `num_cases` files if given.
    `file_ending` applies to the roi layout (KiTS layouts are .nii.gz). `min_spacing_mm` coarsens the
    label maps first (see :func:`coarse_label_map`). `phase`: the contrast phase of every CT
    (:mod:`.contrast_phases`). The folder appears only when complete; an existing one needs `overwrite`.
    """
    check_phase(phase)
    if min_spacing_mm is not None and not labels_from:
        raise ValueError("min_spacing_mm applies to painted CTs (labels_from) only")
    get_layout(layout)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    out_dir = Path(out_dir)
    inputs = label_files(labels_from) if labels_from else []
    if inputs:
        inputs = inputs[:num_cases] if num_cases is not None else inputs
        names = [_case_id_of(f) for f in inputs]
    else:
        count = 4 if num_cases is None else num_cases
        names = [f"synth_{i:03d}" if layout == "roi" else f"case_{i:05d}" for i in range(count)]
    if not names:
        raise ValueError("nothing to synthesize: num_cases is 0")
    with staged_folder(out_dir, overwrite, inputs) as staging:
        jobs = [SynthJob(i, name, inputs[i] if inputs else None, seed, preset, layout, staging, file_ending,
                         min_spacing_mm, phase) for i, name in enumerate(names)]
        run_per_case(write_case, jobs, num_processes, "synthesizing", progress)
    return out_dir
