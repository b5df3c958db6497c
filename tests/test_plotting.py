"""Shared slice rendering: intensity window, outlines with named colours, display orientation, atomic PNGs."""
import matplotlib.image
import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.colors import to_rgba

from nnunet_ppm.plotting import SOFT_TISSUE_WINDOW, add_legend, draw_slice, panel_grid, save_figure, \
    to_display_orientation, window


def test_soft_tissue_window_maps_minus_160_to_240_hu_onto_0_to_1():
    assert window(np.array([-1000, -160, 40, 240, 1000]), *SOFT_TISSUE_WINDOW).tolist() == [0, 0, 0.5, 1, 1]


def colours_near(png: np.ndarray, axes, x: float, y: float, reach: int = 0) -> set:
    """The 0..255 RGB colours of the saved PNG's pixels within ``reach`` pixels of data point (x = column,
    y = row) of ``axes``."""
    column, height = (int(round(v)) for v in axes.transData.transform((x, y)))
    row = png.shape[0] - height
    patch = png[row - reach: row + reach + 1, column - reach: column + reach + 1, :3]
    return {tuple(int(v) for v in pixel) for pixel in np.round(patch * 255).reshape(-1, 3)}


def shows_colour(png: np.ndarray, axes, x: float, y: float, colour: tuple, reach: int = 1,
                 tolerance: int = 10) -> bool:
    """Whether a pixel within ``reach`` pixels of data point (x, y) of ``axes`` has ``colour`` (0..255 RGB),
    each channel within ``tolerance`` (anti-aliased lines that cross a pixel edge are not quite pure)."""
    return any(max(abs(a - b) for a, b in zip(pixel, colour)) <= tolerance
               for pixel in colours_near(png, axes, x, y, reach))


def pixel_count(png: np.ndarray, colour: tuple, axes=None) -> int:
    """How many pixels of the saved PNG (inside ``axes`` when given) have exactly this 0..255 RGB colour."""
    rgb = np.round(png[..., :3] * 255).astype(int)
    if axes is not None:
        (x0, y0), (x1, y1) = axes.get_window_extent().get_points()
        rgb = rgb[png.shape[0] - int(y1): png.shape[0] - int(y0), int(x0): int(x1)]
    return int(np.all(rgb == colour, axis=-1).sum())


def test_draw_slice_outlines_each_label_group_in_its_colour(tmp_path):
    image = np.zeros((40, 50))
    image[:, :3] = -1000  # below the window: black; 0 HU is 0.4 of the way from -160 to 240 HU
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
    assert [p.name for p in tmp_path.iterdir()] == ["slice.png"]
    png = matplotlib.image.imread(tmp_path / "slice.png")
    assert png.shape == (340, 260, 4), "2.6 in wide, 2.6 in + 0.8 in high, 100 dpi"
    ax = axes[0, 0]
    # outlines run along pixel edges (anti-aliased lines): their pure colour lies within a pixel of the edge
    for (x, y), colour in {(22, 4.5): (255, 0, 0), (39.5, 20): (255, 0, 0),  # kidney+tumor: rows 5..29, columns 5..39
                           (9.5, 15): (0, 0, 255), (15, 19.5): (0, 0, 255),  # tumor: rows 10..19, columns 10..19
                           (42, 34.5): (0, 128, 0)}.items():                  # second label map
        assert shows_colour(png, ax, x, y, colour, tolerance=0), (x, y, colour)
    assert colours_near(png, ax, 30, 25, reach=3) == {(102, 102, 102)}, "0 HU: 0.4 of the window, no outline"
    assert colours_near(png, ax, 45, 5, reach=3) == {(102, 102, 102)}
    assert colours_near(png, ax, 1, 20, reach=3) == {(0, 0, 0)}, "-1000 HU is below the window"
    assert pixel_count(png, (255, 255, 0)) == 0, "absent label 3: no yellow"
    for colour in ((255, 0, 0), (0, 0, 255)):  # the legend's lines, outside the panel
        assert pixel_count(png, colour) - pixel_count(png, colour, ax) >= 10, f"legend line {colour}"


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
