"""Overlay pictures: a few representative axial slices of a case, CT plus reference and predicted outlines.

One PNG per case: rows = slices, columns = CT alone, reference, then each
method's prediction, all outlined as in KiTS figures (kidney incl. its masses
red, tumor blue, cyst yellow). Image and label maps are reoriented for display
(see :func:`nnunet_ppm.plotting.to_display_orientation`), and by default the
view is zoomed to the labelled region plus a margin.
"""
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from nnunet_ppm.evaluation.labels import LabelScheme
from nnunet_ppm.evaluation.metrics import mask_of
from nnunet_ppm.plotting import KITS_COLOURS, add_legend, draw_slice, panel_grid, save_figure, to_display_orientation

DEFAULT_ZOOM_MARGIN_MM = 30.0


def kits_outlines(scheme: LabelScheme) -> Tuple[Dict, Dict[str, str]]:
    """({label values: colour} for :func:`draw_slice`, {name: colour} for the legend) of a label scheme."""
    whole_kidney = tuple(v for v in (scheme.kidney, scheme.tumor, scheme.cyst) if v is not None)
    outlines = {whole_kidney: KITS_COLOURS["kidney"], scheme.tumor: KITS_COLOURS["tumor"]}
    legend = {"kidney": KITS_COLOURS["kidney"], "tumor": KITS_COLOURS["tumor"]}
    if scheme.cyst is not None:
        outlines[scheme.cyst] = legend["cyst"] = KITS_COLOURS["cyst"]
    return outlines, legend


def representative_slices(labels: np.ndarray, tumor_values: Sequence[int], count: int = 3) -> List[int]:
    """Axial indices (axis 0) worth showing: ``count`` slices spread evenly over the labelled ones, the one
    nearest the slice with most tumor replaced by that slice. An empty label map gives its middle slice."""
    foreground_slices = np.flatnonzero((labels != 0).any(axis=(1, 2)))
    if foreground_slices.size == 0:
        return [labels.shape[0] // 2]
    spread = foreground_slices[np.linspace(0, foreground_slices.size - 1, count + 2)[1:-1].round().astype(int)]
    tumor_area = mask_of(labels, tumor_values).sum(axis=(1, 2))
    if tumor_area.any():
        most_tumor = tumor_area.argmax()
        spread[np.abs(spread - most_tumor).argmin()] = most_tumor
    return sorted({int(z) for z in spread})


def in_plane_box(label_maps: Sequence[np.ndarray], spacing_yx: Sequence[float],
                 margin_mm: Optional[float]) -> Tuple[slice, slice]:
    """(rows, columns) slices around the labelled region of all maps plus ``margin_mm``; the whole plane
    when ``margin_mm`` is None or nothing is labelled."""
    footprint = np.logical_or.reduce([(labels != 0).any(axis=0) for labels in label_maps])
    if margin_mm is None or not footprint.any():
        return slice(None), slice(None)
    box = []
    for axis, spacing in enumerate(spacing_yx):
        indices = np.flatnonzero(footprint.any(axis=1 - axis))
        margin = math.ceil(margin_mm / spacing)
        box.append(slice(max(indices[0] - margin, 0), min(indices[-1] + 1 + margin, footprint.shape[axis])))
    return box[0], box[1]


def find_image(images_folder: Path, case_id: str, file_ending: str) -> Path:
    """The CT of a case: nnU-Net's ``CASE_0000<ending>``, else ``CASE<ending>``."""
    for name in (f"{case_id}_0000{file_ending}", f"{case_id}{file_ending}"):
        if (images_folder / name).is_file():
            return images_folder / name
    raise FileNotFoundError(f"case {case_id}: no image {case_id}_0000{file_ending} or {case_id}{file_ending} "
                            f"in {images_folder}")


def _read_for_display(path: Path) -> Tuple[np.ndarray, Tuple[float, ...]]:
    image = to_display_orientation(sitk.ReadImage(str(path)))
    return sitk.GetArrayFromImage(image), tuple(reversed(image.GetSpacing()))


def overlay_case(case_id: str, image_path: Path, reference_path: Path, prediction_paths: Mapping[str, Path],
                 output_png: Path, scheme: LabelScheme, slice_count: int = 3,
                 zoom_margin_mm: Optional[float] = DEFAULT_ZOOM_MARGIN_MM) -> Path:
    """Write the overlay PNG of one case; returns its path.

    Args:
        case_id: shown as the title and used in error messages.
        image_path: the CT; reference_path: the reference label map.
        prediction_paths: method name -> its predicted label map, one column each, in this order.
        output_png: where to write (atomically).
        scheme: label values (see :mod:`nnunet_ppm.evaluation.labels`).
        slice_count: how many axial slices (rows), chosen from the reference (:func:`representative_slices`).
        zoom_margin_mm: margin around the labelled region; None shows whole slices.
    """
    image, spacing = _read_for_display(image_path)
    columns = {"reference": reference_path, **prediction_paths}
    label_maps = {}
    for name, path in columns.items():
        labels, _ = _read_for_display(path)
        if labels.shape != image.shape:
            raise ValueError(f"case {case_id}: {name} label map {path} has shape {labels.shape}, "
                             f"its image {image_path} {image.shape}")
        label_maps[name] = labels
    reference = label_maps["reference"]
    source = reference if reference.any() else np.max(list(label_maps.values()), axis=0)
    slices = representative_slices(source, (scheme.tumor,), slice_count)
    rows, cols = in_plane_box(list(label_maps.values()), spacing[1:], zoom_margin_mm)
    outlines, legend = kits_outlines(scheme)

    panel_rows, panel_columns = image[0, rows, cols].shape
    figure, axes = panel_grid(len(slices), 1 + len(label_maps),
                              panel_aspect=panel_rows * spacing[1] / (panel_columns * spacing[2]))
    for row, z in enumerate(slices):
        image_slice = image[z, rows, cols]
        draw_slice(axes[row, 0], image_slice, pixel_aspect=spacing[1] / spacing[2], title=f"CT, slice {z}")
        for column, (name, labels) in enumerate(label_maps.items(), start=1):
            draw_slice(axes[row, column], image_slice, [(labels[z, rows, cols], outlines)],
                       pixel_aspect=spacing[1] / spacing[2], title=name if row == 0 else None)
    figure.suptitle(case_id, fontsize=11)
    add_legend(figure, legend)
    save_figure(figure, output_png)
    return output_png


def overlay_cases(case_ids: Sequence[str], images_folder: Path, reference_files: Mapping[str, Path],
                  prediction_files: Mapping[str, Mapping[str, Path]], output_folder: Path, file_ending: str,
                  scheme: LabelScheme, slice_count: int = 3,
                  zoom_margin_mm: Optional[float] = DEFAULT_ZOOM_MARGIN_MM) -> Dict[str, Path]:
    """Overlay PNGs ``output_folder/CASE.png`` for ``case_ids``; returns case id -> PNG.

    ``reference_files``: case id -> reference; ``prediction_files``: method -> (case id -> prediction).
    """
    written = {}
    for case_id in tqdm(case_ids, desc="overlays", unit="case"):
        predictions = {method: files[case_id] for method, files in prediction_files.items()}
        written[case_id] = overlay_case(case_id, find_image(images_folder, case_id, file_ending),
                                        reference_files[case_id], predictions, output_folder / f"{case_id}.png",
                                        scheme, slice_count, zoom_margin_mm)
    return written
