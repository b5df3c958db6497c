"""Slice pictures shared by the package: a CT slice in an intensity window with label maps as outlines.

Kept general: one image slice plus any number of label maps, each with its own
``{label value or tuple of values: colour}``; colours are matplotlib names.
KiTS figures draw the kidney red and the tumor blue (:data:`KITS_COLOURS`).
Uses matplotlib's object API (no pyplot), so it needs no display and keeps no
global figure state.

Typical use::

    figure, axes = panel_grid(1, 2)
    draw_slice(axes[0, 0], ct[z], pixel_aspect=spacing[1] / spacing[2], title="CT")
    draw_slice(axes[0, 1], ct[z], [(labels[z], {(1, 2): "red", 2: "blue"})], title="reference")
    add_legend(figure, {"kidney": "red", "tumor": "blue"})
    save_figure(figure, "slice.png")
"""
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nnunet_ppm.atomic_io import PathLike, atomic_output

SOFT_TISSUE_WINDOW = (40.0, 400.0)  # (level, width) in HU: shows -160 .. 240 HU
KITS_COLOURS = {"kidney": "red", "tumor": "blue", "cyst": "yellow"}
DISPLAY_ORIENTATION = "LPS"  # array axis 0 runs foot -> head; axial slices show anterior up, patient right on the left

LabelValues = Union[int, Tuple[int, ...]]
LabelOutlines = Tuple[np.ndarray, Mapping[LabelValues, str]]


def window(image: np.ndarray, level: float, width: float) -> np.ndarray:
    """Map intensities to [0, 1]: ``level - width/2`` -> 0, ``level + width/2`` -> 1, clipped."""
    return np.clip((np.asarray(image, dtype=np.float32) - (level - width / 2)) / width, 0.0, 1.0)


def to_display_orientation(image: sitk.Image) -> sitk.Image:
    """Resample-free reorientation so that ``array[z]`` is an axial slice in radiological view."""
    return sitk.DICOMOrient(image, DISPLAY_ORIENTATION)


def panel_grid(rows: int, columns: int, panel_inches: float = 2.6,
               panel_aspect: float = 1.0) -> Tuple[Figure, np.ndarray]:
    """A figure with a ``rows x columns`` array of axes (always 2-D).

    ``panel_inches`` is a panel's width, ``panel_aspect`` its height / width (the image's, in mm).
    """
    figure = Figure(figsize=(columns * panel_inches, rows * panel_inches * panel_aspect + 0.8),
                    layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def draw_slice(axes, image_slice: np.ndarray, label_outlines: Sequence[LabelOutlines] = (),
               intensity_window: Tuple[float, float] = SOFT_TISSUE_WINDOW, pixel_aspect: float = 1.0,
               title: Optional[str] = None, line_width: float = 1.2) -> None:
    """Draw a 2-D image slice in grey with label outlines on top.

    Args:
        axes: matplotlib axes to draw into.
        image_slice: 2-D intensities (HU for CT).
        label_outlines: (2-D label slice, {value or tuple of values: colour}) pairs; each entry outlines
            the region of those values, drawn in the order given.
        intensity_window: (level, width) of the grey scale.
        pixel_aspect: row spacing / column spacing, so anisotropic pixels keep their true shape.
        title: text above the panel.
        line_width: outline width in points.
    """
    axes.imshow(window(image_slice, *intensity_window), cmap="gray", vmin=0.0, vmax=1.0,
                aspect=pixel_aspect, interpolation="nearest")
    for labels, colours in label_outlines:
        for values, colour in colours.items():
            mask = np.isin(labels, values)
            if mask.any():
                axes.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=line_width)
    rows, columns = image_slice.shape
    axes.set_xlim(-0.5, columns - 0.5)  # contour() would otherwise shrink the view by half a pixel
    axes.set_ylim(rows - 0.5, -0.5)
    axes.set_axis_off()
    if title:
        axes.set_title(title, fontsize=9)


def add_legend(figure: Figure, named_colours: Mapping[str, str]) -> None:
    """A one-row legend at the bottom of the figure: a line of each colour with its name."""
    handles = [Line2D([], [], color=colour, label=name) for name, colour in named_colours.items()]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)


def save_figure(figure: Figure, path: PathLike, dpi: int = 100) -> None:
    """Save a figure as PNG (or the format its suffix names) atomically."""
    with atomic_output(path) as temporary:
        figure.savefig(temporary, dpi=dpi)
