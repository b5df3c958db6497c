"""Small synthetic whole CTs painted onto real KiTS19 label maps (KiTS19 layout), and their nnU-Net raw datasets.

The label maps are first resampled (nearest neighbour) to at least `spacing_mm`
per axis, keeping their header's origin and direction, so the CTs are small
and quick while kidney shapes, positions and headers stay real. Used by
tests/test_whole_ct.py and benchmarks/whole_ct.py.
"""
from pathlib import Path
from typing import Sequence

import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.convert import convert_dataset
from nnunet_ppm.dataset_conversion.synthesize import synthesize


def coarse_label_map(path: Path, spacing_mm: float) -> sitk.Image:
    """The label map at spacing max(its own, `spacing_mm`) per axis, same origin and direction."""
    label = sitk.ReadImage(str(path))
    spacing = [max(s, spacing_mm) for s in label.GetSpacing()]
    size = [max(int(round(n * s / t)), 1) for n, s, t in zip(label.GetSize(), label.GetSpacing(), spacing)]
    return sitk.Resample(label, size, sitk.Transform(), sitk.sitkNearestNeighbor, label.GetOrigin(), spacing,
                         label.GetDirection(), 0, label.GetPixelID())


def painted_source(labels_dir: Path, case_ids: Sequence[str], root: Path, name: str, seed: int = 0,
                   spacing_mm: float = 3.0, num_processes: int = 1) -> Path:
    """CTs painted onto coarse copies of `case_ids`' label maps, in the KiTS19 layout: root/source_<name>."""
    coarse = root / f"labels_{name}"
    coarse.mkdir(parents=True)
    for case in case_ids:
        sitk.WriteImage(coarse_label_map(labels_dir / f"{case}.nii.gz", spacing_mm), str(coarse / f"{case}.nii.gz"))
    return synthesize(root / f"source_{name}", seed=seed, layout="kits19", labels_from=[coarse],
                      num_processes=num_processes, progress=False)


def painted_dataset(labels_dir: Path, case_ids: Sequence[str], root: Path, dataset_id: int, seed: int = 0,
                    spacing_mm: float = 3.0) -> Path:
    """:func:`painted_source` converted (whole CTs) into root/nnUNet_raw; returns the raw dataset folder."""
    source = painted_source(labels_dir, case_ids, root, str(dataset_id), seed, spacing_mm)
    return convert_dataset(source, dataset_id, layout="kits19", raw_dir=root / "nnUNet_raw", progress=False)
