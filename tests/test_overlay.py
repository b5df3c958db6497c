"""Overlay pictures: which slices, which part of the plane, and an image that does not fit its labels."""
import matplotlib.image
import numpy as np
import pytest

from label_volumes import kidney_with_tumor, synthetic_ct, write_volume
from nnunet_ppm.evaluation import overlay as overlay_module
from nnunet_ppm.evaluation.labels import LabelScheme
from nnunet_ppm.evaluation.overlay import in_plane_box, overlay_case, representative_slices
from test_plotting import pixel_count, shows_colour

RED, BLUE = (255, 0, 0), (0, 0, 255)


def test_representative_slices_spread_over_the_kidney_and_include_the_largest_tumor_slice():
    labels = np.zeros((40, 10, 10), np.uint8)
    labels[10:31, 2:8, 2:8] = 1
    labels[12:15, 3:6, 3:6] = 2
    labels[13, 3:7, 3:7] = 2  # the slice with most tumor
    assert representative_slices(labels, (2,), count=3) == [13, 20, 25]  # spread 15, 20, 25; 15 -> 13
    assert representative_slices(np.zeros((9, 4, 4)), (2,)) == [4]
    assert len(representative_slices(labels[10:12], (2,), count=3)) == 2  # two labelled slices only


def test_in_plane_box_adds_the_margin_in_mm_and_stays_inside_the_image():
    labels = np.zeros((3, 100, 100), np.uint8)
    labels[1, 40:50, 90:95] = 1
    rows, columns = in_plane_box([labels, np.zeros_like(labels)], (0.5, 2.0), margin_mm=10.0)
    assert (rows, columns) == (slice(20, 70), slice(85, 100))
    assert in_plane_box([labels], (0.5, 2.0), margin_mm=None) == (slice(None), slice(None))


def test_image_of_another_shape_is_an_error_naming_the_case(tmp_path):
    labels = kidney_with_tumor()
    write_volume(tmp_path / "ct.nii.gz", synthetic_ct(labels[:, :-2]))
    write_volume(tmp_path / "ref.nii.gz", labels)
    with pytest.raises(ValueError, match="case case_9: reference label map .* has shape"):
        overlay_case("case_9", tmp_path / "ct.nii.gz", tmp_path / "ref.nii.gz", {}, tmp_path / "o.png", LabelScheme())
    assert not (tmp_path / "o.png").exists()


def test_overlay_png_shows_ct_reference_and_prediction_outlines_on_the_chosen_slices(tmp_path, monkeypatch):
    labels = kidney_with_tumor()  # kidney z 3..12, y and x 5..18; tumor z 6..9, y and x 8..11
    write_volume(tmp_path / "ct.nii.gz", synthetic_ct(labels))
    write_volume(tmp_path / "ref.nii.gz", labels)
    write_volume(tmp_path / "ppm.nii.gz", kidney_with_tumor(tumor_box=None))
    figures = []
    save_figure = overlay_module.save_figure
    monkeypatch.setattr(overlay_module, "save_figure", lambda figure, path: (figures.append(figure),
                                                                            save_figure(figure, path)))
    overlay_case("case_1", tmp_path / "ct.nii.gz", tmp_path / "ref.nii.gz", {"ppm": tmp_path / "ppm.nii.gz"},
                 tmp_path / "o.png", LabelScheme(), zoom_margin_mm=2.0)
    png = matplotlib.image.imread(tmp_path / "o.png")
    assert png.shape == (860, 780, 4), "3 x 3 panels of 2.6 in, legend 0.8 in, 100 dpi"
    panels = np.array(figures[0].axes).reshape(3, 3)
    assert [row[0].get_title() for row in panels] == ["CT, slice 6", "CT, slice 7", "CT, slice 10"]
    assert [panel.get_title() for panel in panels[0, 1:]] == ["reference", "ppm"]
    for (ct, reference, prediction), z in zip(panels, (6, 7, 10)):
        assert reference.get_xlim() == prediction.get_xlim() == (-0.5, 17.5), "zoomed to columns 3..20"
        assert pixel_count(png, RED, ct) == pixel_count(png, BLUE, ct) == 0, "the CT column has no outlines"
        for panel in (reference, prediction):  # the kidney's first row and column (5) lie 2 into the zoom
            assert all(shows_colour(png, panel, x, y, RED, reach=2, tolerance=30) for x, y in ((10, 1.5), (1.5, 10)))
        tumor_outline = shows_colour(png, reference, 7, 4.5, BLUE, reach=2, tolerance=30)  # row 8 = 5 in the zoom
        assert tumor_outline is (z < 10), "tumor on slices 6..9"
        assert pixel_count(png, BLUE, prediction) == 0, "the prediction has no tumor"
