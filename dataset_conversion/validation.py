"""Input checks run before a case is converted; each problem is one line a user can act on.

Header checks (:func:`header_problems`) read only file headers, so a whole
source folder is checked in seconds before anything is written. Voxel checks
(:func:`voxel_problems`) run on the loaded arrays of each case before its output
is written.
"""
import zlib
from pathlib import Path
from typing import Collection, List, Sequence

import numpy as np

from nnunet_ppm.dataset_conversion.image_files import ImageHeader, read_header
from nnunet_ppm.dataset_conversion.labels import KIDNEY
from nnunet_ppm.dataset_conversion.layouts import SourceCase

# image and label grids must agree to these tolerances
SPACING_RTOL = 1e-4
ORIGIN_ATOL_MM = 1e-3
DIRECTION_ATOL = 1e-4


def _rounded(values) -> tuple:
    return tuple(round(float(v), 4) for v in values)


def _grid_problems(image: ImageHeader, label: ImageHeader) -> List[str]:
    problems = []
    if image.size != label.size:
        problems.append(f"image and label have different shapes: image {image.size}, label {label.size} (x, y, z)")
    if not np.allclose(image.spacing, label.spacing, rtol=SPACING_RTOL, atol=0):
        problems.append(f"image and label have different spacing: image {_rounded(image.spacing)} mm, "
                        f"label {_rounded(label.spacing)} mm")
    if not np.allclose(image.origin, label.origin, rtol=0, atol=ORIGIN_ATOL_MM):
        problems.append(f"image and label have different origins: image {_rounded(image.origin)}, "
                        f"label {_rounded(label.origin)}")
    if not np.allclose(image.direction, label.direction, rtol=0, atol=DIRECTION_ATOL):
        problems.append(f"image and label have different directions: image {_rounded(image.direction)}, "
                        f"label {_rounded(label.direction)}")
    return problems


def gzip_is_complete(path: Path) -> bool:
    """True when a .gz file decompresses to its end. SimpleITK reads a truncated .nii.gz without
    complaint, filling the missing voxels with 0, so the converters check the stream themselves."""
    decompressor = zlib.decompressobj(wbits=31)
    try:
        with open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                while chunk and not decompressor.eof:
                    decompressor.decompress(chunk, 1 << 24)
                    chunk = decompressor.unconsumed_tail
    except zlib.error:
        return False
    return decompressor.eof


def truncated_files(paths: Sequence[Path]) -> List[str]:
    """Problems for the gzip-compressed files among `paths` that end early or are corrupt."""
    return [f"{path} is truncated or corrupt (its gzip stream does not decompress to the end)"
            for path in paths if path.is_file() and path.name.lower().endswith(".gz") and not gzip_is_complete(path)]


def reader_error(error: Exception) -> str:
    """The informative part of a reader error (SimpleITK puts it on the last line)."""
    lines = str(error).strip().splitlines()
    return lines[-1].replace("sitk::ERROR: ", "") if lines else repr(error)


def header_problems(case: SourceCase) -> List[str]:
    """Problems visible in the headers: unreadable files, not 3D, several channels, image/label grids that differ."""
    headers, problems = {}, []
    for role, path in (("image", case.image), ("label", case.label)):
        try:
            header = read_header(path)
        except Exception as error:  # SimpleITK raises RuntimeError, DICOM folders ValueError
            problems.append(f"cannot read {role} {path}: {reader_error(error)}")
            continue
        if header.dimension != 3:
            problems.append(f"{role} {path.name} is {header.dimension}D (size {header.size}); expected a 3D volume")
        elif header.components != 1:
            problems.append(f"{role} {path.name} has {header.components} channels per voxel; expected one")
        else:
            headers[role] = header
    if len(headers) == 2:
        problems += _grid_problems(headers["image"], headers["label"])
    return problems


def _label_values(label: np.ndarray) -> List[float]:
    """The distinct finite values of a label map (bincount for small non-negative integers, else unique)."""
    if np.issubdtype(label.dtype, np.integer) and label.size and 0 <= label.min() and label.max() < 1024:
        return np.flatnonzero(np.bincount(label.ravel())).tolist()
    if np.issubdtype(label.dtype, np.floating):
        label = label[np.isfinite(label)]
    return np.unique(label).tolist()


def voxel_problems(image: np.ndarray, label: np.ndarray, label_values: Collection[int]) -> List[str]:
    """Problems in the voxels: NaN/inf in either array, label values outside `label_values`, no kidney."""
    problems = []
    for role, array in (("image", image), ("label", label)):
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            problems.append(f"{role} holds {int(np.count_nonzero(~np.isfinite(array)))} NaN/inf voxels")
    found = _label_values(label)
    unexpected = [v for v in found if v not in label_values]
    if unexpected:
        problems.append(f"label values {unexpected} outside the expected {sorted(label_values)}")
    if KIDNEY not in found:
        problems.append(f"label map holds no kidney (no voxel with label {KIDNEY})")
    return problems
