"""The kidney mass search's morphology (nnunet_ppm.localization.ellipsoid_morphology) gives scipy's voxels."""
import numpy as np
import pytest
from scipy import ndimage

from nnunet_ppm.localization import ellipsoid_morphology

OPERATIONS = ("binary_dilation", "binary_erosion", "binary_closing", "binary_opening")


@pytest.mark.parametrize("seed", range(40))
def test_every_operation_equals_scipy_with_the_ball_as_structure(seed):
    """Random blobs and balls: sizes from below the ball's to several times it, radii from under one voxel
    (a flat ball) to five, different per axis, so runs reach past the array's edges."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(2, 36, 3))
    mask = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.5, 3)) > rng.uniform(0.45, 0.55)
    radius = rng.uniform(0.5, 5, 3)
    structure = ellipsoid_morphology.ball(radius)
    for operation in OPERATIONS:
        expected = getattr(ndimage, operation)(mask, structure=structure)
        np.testing.assert_array_equal(getattr(ellipsoid_morphology, operation)(mask, radius), expected,
                                      err_msg=f"{operation}, shape {shape}, radius {radius}")


def test_a_full_mask_erodes_from_the_array_border_and_an_empty_one_dilates_to_nothing():
    full = np.ones((9, 10, 11), bool)
    eroded = ellipsoid_morphology.binary_erosion(full, (2, 1, 3))
    assert eroded[2:-2, 1:-1, 3:-3].all() and eroded.sum() == 5 * 8 * 5
    assert not ellipsoid_morphology.binary_dilation(np.zeros((4, 5, 6), bool), (2, 2, 2)).any()


@pytest.mark.parametrize("shape", [(3, 4, 5), (4, 3, 2), (1, 6, 7)])
def test_an_array_thinner_than_the_ball_equals_scipy(shape):
    """Runs whose offset is larger than the array along an axis (the earlier blobs rarely make such arrays)."""
    mask = np.random.default_rng(sum(shape)).random(shape) > 0.3
    radius = (4.5, 5.0, 2.0)
    for operation in OPERATIONS:
        expected = getattr(ndimage, operation)(mask, structure=ellipsoid_morphology.ball(radius))
        np.testing.assert_array_equal(getattr(ellipsoid_morphology, operation)(mask, radius), expected,
                                      err_msg=operation)
