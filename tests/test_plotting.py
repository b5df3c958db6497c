"""Shared slice rendering: intensity window, outlines with named colours, display orientation, atomic PNGs."""
import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.colors import to_rgba

from nnunet_ppm.plotting import SOFT_TISSUE_WINDOW, add_legend, draw_slice, panel_grid, save_figure, \
    to_display_orientation, window


def test_soft_tissue_window_maps_minus_160_to_240_hu_onto_0_to_1():
    assert window(np.array([-1000, -160, 40, 240, 1000]), *SOFT_TISSUE_WINDOW).tolist() == [0, 0, 0.5, 1, 1]


def test_draw_slice_outlines_each_label_group_in_its_colour(tmp_path):
    image = np.zeros((40, 50))
    labels = np.zeros((40, 50), np.uint8)
    labels[5:30, 5:40] = 1
    labels[10:20, 10:20] = 2
    synthetic = np.zeros((40, 50), np.uint8)
    synthetic[30:35, 40:45] = 7
    figure, axes = panel_grid(1, 1)
    draw_slice(axes[0, 0], image, [(labels, {(1, 2): "red", 2: "blue", 3: "yellow"}), (synthetic, {7: "green"})],
               pixel_aspect=2.0, title="t")
    contour_colours = [tuple(c.get_edgecolor()[0]) for c in axes[0, 0].collections]
    assert contour_colours == [to_rgba("red"), to_rgba("blue"), to_rgba("green")]  # absent label 3: no outline
    red_outline = axes[0, 0].collections[0].get_paths()[0].vertices
    assert red_outline[:, 1].min() == pytest.approx(4.5) and red_outline[:, 1].max() == pytest.approx(29.5)
    assert axes[0, 0].get_xlim() == (-0.5, 49.5) and axes[0, 0].get_ylim() == (39.5, -0.5)
    assert axes[0, 0].get_aspect() == 2.0
    add_legend(figure, {"kidney": "red", "tumor": "blue"})
    save_figure(figure, tmp_path / "slice.png")
    assert (tmp_path / "slice.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["slice.png"]


def test_display_orientation_puts_kits19_slices_on_axis_0():
    # KiTS19 stores the slice axis first in index space: SimpleITK arrays are (x-ish, y, slices)
    array = np.zeros((20, 30, 5), np.uint8)
    array[:, :, 2] = 1  # one axial slice
    image = sitk.GetImageFromArray(array)
    image.SetDirection((0, 0, -1, 0, -1, 0, -1, 0, 0))
    image.SetSpacing((3.0, 0.8, 0.8))
    oriented = to_display_orientation(image)
    oriented_array = sitk.GetArrayFromImage(oriented)
    assert oriented_array.shape == (5, 30, 20)
    assert oriented.GetSpacing() == (0.8, 0.8, 3.0)
    assert np.flatnonzero(oriented_array.any(axis=(1, 2))).tolist() == [2]
