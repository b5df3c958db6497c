"""The enhancing mass around a located kidney box (nnunet_ppm.localization.kidney_mass) on small CTs."""
import numpy as np
import SimpleITK as sitk

from nnunet_ppm.localization.kidney_mass import kidney_mass_box

SPACING = (2.0, 1.0, 1.0)  # mm, array order
GRID = 2  # voxels of the 2 mm grid the mass is found on, in y and x: its extent there is exact to a grid step
FAT, LIVER, CORTEX, AORTA = -100, 90, 200, 380


def _ct(shape=(40, 120, 120)) -> np.ndarray:
    return np.full(shape, FAT, np.int16)


def _image(ct: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing(SPACING[::-1])
    return image


def test_the_mass_of_a_kidney_inside_a_larger_box_is_the_kidneys_own_box():
    ct = _ct()
    ct[10:30, 40:70, 40:70] = CORTEX
    assert kidney_mass_box(_image(ct), ((4, 36), (26, 90), (30, 84))) == ((10, 30), (40, 70), (40, 70))


def test_the_mass_holds_a_tumor_beyond_the_box_but_not_a_neighbour_behind_a_thin_bridge():
    ct = _ct()
    ct[10:30, 40:70, 40:70] = CORTEX  # the kidney the atlases found
    ct[12:28, 44:66, 70:100] = CORTEX - 20  # an exophytic, enhancing tumor the atlases did not know
    ct[5:35, 5:30, 5:115] = CORTEX  # an enhancing neighbour (spleen-like) ...
    ct[20:22, 30:40, 55:57] = CORTEX  # ... joined to the kidney by a 2 mm bridge
    ct[:, 80:84, 20:24] = AORTA  # brighter than any enhancing tissue
    grown = kidney_mass_box(_image(ct), ((10, 30), (40, 70), (40, 70)), search_mm=60)
    assert grown[0] == (10, 30) and grown[1] == (40, 70), grown  # neither the neighbour nor the bridge (y 30..39)
    assert grown[2][0] == 40 and 100 <= grown[2][1] <= 100 + GRID, grown  # the tumor (x 70..99) is inside


def test_a_mass_that_runs_into_the_search_limit_has_leaked_and_is_no_mass():
    ct = _ct((40, 200, 120))
    ct[10:30, 40:70, 40:70] = CORTEX
    ct[5:35, 70:200, 40:75] = CORTEX  # a thick enhancing organ leaving the search region (y), no opening cuts it
    assert kidney_mass_box(_image(ct), ((10, 30), (40, 70), (40, 70)), search_mm=40) is None


def test_a_wider_opening_cuts_a_thicker_bridge_and_the_tumor_beyond_the_box_still_counts():
    ct = _ct((40, 200, 140))
    ct[10:30, 80:110, 40:70] = CORTEX
    ct[12:28, 84:106, 70:100] = CORTEX - 20  # tumor beyond the box (x)
    ct[5:35, 0:60, 20:90] = CORTEX  # a thick organ running out of the search region (y) ...
    ct[18:23, 60:80, 50:60] = CORTEX  # ... joined by a 10 mm bridge that a 4 mm opening keeps
    grown = kidney_mass_box(_image(ct), ((10, 30), (80, 110), (40, 70)), search_mm=50)
    assert 60 < grown[1][0] <= 80 and grown[1][1] == 110, grown  # at most a stub of the bridge, not the organ
    assert grown[0] == (10, 30) and grown[2][0] == 40 and 100 <= grown[2][1] <= 100 + GRID, grown
    assert kidney_mass_box(_image(ct), ((10, 30), (80, 110), (40, 70)), search_mm=50, openings_mm=(4.0,)) is None, \
        "one opening: the mass leaks to the search limit"


def test_a_mass_cut_by_the_image_border_reaches_the_border():
    ct = _ct()
    ct[10:30, 40:70, 40:120] = CORTEX  # kidney and tumor run out of the scan at x = 120
    assert kidney_mass_box(_image(ct), ((10, 30), (40, 70), (40, 80)), search_mm=60)[2] == (40, 120)


def test_without_enhancing_tissue_in_the_box_core_there_is_no_mass():
    ct = _ct()
    ct[10:30, 40:70, 40:70] = LIVER  # not enhancing like a kidney
    assert kidney_mass_box(_image(ct), ((10, 30), (40, 70), (40, 70))) is None
