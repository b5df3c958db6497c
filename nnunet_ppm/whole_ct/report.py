"""A report per CT that a surgeon's team can read: volumes per side, each tumor's size, and a picture.

`predict-ct` writes, next to ``OUT/<case>.nii.gz``:

* ``OUT/<case>_report.md``: kidney and tumor volume per side (ml), the
  tumors (connected components of the tumor label, 26-connected) with their
  side, volume and largest diameter (mm: the longest distance between two of
  the tumor's voxel centres, from its convex hull), and the localiser's notes;
* ``OUT/<case>_report.png``: two axial and two coronal slices (the slices
  through most tumor, else most kidney) with the outlines of the package's
  overlay pictures (kidney red, tumor blue).

Both say that the labels are for research use only, validated on synthetic
CTs painted onto real label maps, and not a medical device.
"""
from pathlib import Path
from typing import List, Sequence

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from nnunet_ppm.atomic_io import write_text_atomic
from nnunet_ppm.evaluation.labels import LabelScheme
from nnunet_ppm.evaluation.overlay import kits_outlines
from nnunet_ppm.plotting import add_legend, draw_slice, panel_grid, save_figure, to_display_orientation
from nnunet_ppm.whole_ct.dicom_seg import RESEARCH_ONLY
from nnunet_ppm.whole_ct.rois import NO_OWNER, CtRoi


def largest_diameter_mm(voxels: np.ndarray, spacing: Sequence[float]) -> float:
    """The longest distance (mm) between two voxel centres of a region (`voxels`: array indices, one per row)."""
    points = voxels * np.asarray(spacing, dtype=float)
    if len(points) > 3:
        try:
            points = points[ConvexHull(points).vertices]
        except QhullError:  # a flat or linear region: every point is a candidate
            pass
    return float(pdist(points).max()) if len(points) > 1 else 0.0


def tumor_findings(labels: np.ndarray, owner: np.ndarray, rois: Sequence[CtRoi], spacing: Sequence[float],
                   tumor_value: int) -> List[dict]:
    """Each tumor (26-connected component of `tumor_value`), largest first: side (the ROI most of it came from),
    volume in ml and largest diameter in mm."""
    components = cc3d.connected_components((labels == tumor_value).astype(np.uint8), connectivity=26)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    tumors = []
    for component in range(1, int(components.max()) + 1):
        voxels = np.argwhere(components == component)
        owners = owner[tuple(voxels.T)]
        owners = owners[owners != NO_OWNER]
        side = rois[int(np.bincount(owners).argmax())].side if owners.size else "unknown"
        tumors.append({"side": side, "volume_ml": round(len(voxels) * voxel_ml, 2),
                       "largest_diameter_mm": round(largest_diameter_mm(voxels, spacing), 1)})
    return sorted(tumors, key=lambda tumor: -tumor["volume_ml"])


def report_text(case: str, volumes_ml: dict, tumors: Sequence[dict], notes: Sequence[str]) -> str:
    """The Markdown report of one CT."""
    lines = [f"# {case}: kidneys and renal tumors", "", f"**{RESEARCH_ONLY[0].upper()}{RESEARCH_ONLY[1:]}.**", "",
             "| side | kidney (ml) | tumor (ml) |", "|---|---|---|"]
    lines += [f"| {side} | {v.get('kidney', 0):.1f} | {v.get('tumor', 0):.1f} |" for side, v in volumes_ml.items()]
    lines += ["", f"Tumors: {len(tumors)}" + ("" if tumors else " (none found)"), ""]
    if tumors:
        lines += ["| # | side | volume (ml) | largest diameter (mm) |", "|---|---|---|---|"]
        lines += [f"| {i} | {t['side']} | {t['volume_ml']:.1f} | {t['largest_diameter_mm']:.1f} |"
                  for i, t in enumerate(tumors, start=1)]
    if notes:
        lines += ["", "Localisation notes:", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def _slices_through(mask: np.ndarray, axis: int, count: int) -> List[int]:
    """`count` indices along `axis`, spread over the part of it where `mask` is (the middle when empty)."""
    occupied = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    if occupied.size == 0:
        return [mask.shape[axis] // 2] * count
    return [int(occupied[int(round(q * (occupied.size - 1)))]) for q in np.linspace(0.35, 0.65, count)]


def report_picture(case: str, ct: sitk.Image, labels: sitk.Image, scheme: LabelScheme, out: Path) -> None:
    """Two axial and two coronal slices of the CT with the label outlines, through the tumors (else kidneys)."""
    image = sitk.GetArrayFromImage(to_display_orientation(ct))
    label_array = sitk.GetArrayFromImage(to_display_orientation(labels))
    spacing = to_display_orientation(ct).GetSpacing()[::-1]  # (z, y, x) of the display array
    focus = label_array == scheme.tumor if (label_array == scheme.tumor).any() else label_array != 0
    outlines, legend = kits_outlines(scheme)
    figure, axes = panel_grid(1, 4, panel_inches=3.0)
    for column, z in enumerate(_slices_through(focus, 0, 2)):
        draw_slice(axes[0, column], image[z], [(label_array[z], outlines)], pixel_aspect=spacing[1] / spacing[2],
                   title=f"axial, slice {z}")
    for column, y in enumerate(_slices_through(focus, 1, 2), start=2):
        draw_slice(axes[0, column], image[::-1, y], [(label_array[::-1, y], outlines)],
                   pixel_aspect=spacing[0] / spacing[2], title=f"coronal, row {y}")
    figure.suptitle(f"{case} - {RESEARCH_ONLY}", fontsize=8)
    add_legend(figure, legend)
    save_figure(figure, out)


def write_report(case: str, ct: sitk.Image, labels: sitk.Image, owner: np.ndarray, rois: Sequence[CtRoi],
                 volumes_ml: dict, notes: Sequence[str], scheme: LabelScheme, out: Path) -> List[dict]:
    """Write OUT/<case>_report.md and OUT/<case>_report.png; returns the tumor findings."""
    tumors = tumor_findings(sitk.GetArrayViewFromImage(labels), owner, rois, ct.GetSpacing()[::-1], scheme.tumor)
    write_text_atomic(out / f"{case}_report.md", report_text(case, volumes_ml, tumors, notes))
    report_picture(case, ct, labels, scheme, out / f"{case}_report.png")
    return tumors
