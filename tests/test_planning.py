"""nnUNetPPMPlans: pooling, deep supervision scales, patch, batch, and the paper's intensity as CTNormalization."""
from types import SimpleNamespace

import numpy as np
import pytest
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_ppm.planning.intensity import ct_normalization_properties, scale_to_unit
from nnunet_ppm.planning.ppm_plans import (NETWORK_CLASS, PLANS_NAME, PlanningError, build_ppm_plans,
                                           check_patch_size, default_patch_size, pooling_strides, total_stride)


def test_isotropic_data_pools_every_axis_twice():
    assert pooling_strides([0.8, 0.78, 0.78]) == [[1, 1, 1], [2, 2, 2], [2, 2, 2]]


def test_thick_slices_pool_in_plane_first():
    assert pooling_strides([3.0, 0.8, 0.8]) == [[1, 1, 1], [1, 2, 2], [2, 2, 2]]
    assert pooling_strides([5.0, 0.7, 0.7]) == [[1, 1, 1], [1, 2, 2], [1, 2, 2]]


def test_patch_is_64_slices_and_the_median_in_plane_size_rounded_to_the_stride():
    assert default_patch_size([200, 150, 150], [4, 4, 4]) == [64, 152, 152]     # the paper's ROIs
    assert default_patch_size([120, 512, 512], [4, 4, 4]) == [64, 192, 192]     # whole CTs: in-plane capped
    assert default_patch_size([29, 64, 64], [2, 4, 4]) == [30, 64, 64]          # small images: never above them


@pytest.mark.parametrize("patch", [[64, 150, 150], [4, 4, 4], [64, 152]])
def test_patch_that_does_not_fit_the_network_is_a_clear_error(patch):
    with pytest.raises(PlanningError, match="does not fit the PPM network"):
        check_patch_size(patch, [4, 4, 4])


def test_ct_normalization_properties_compute_the_papers_formula():
    mean_scaled = 0.31
    props = ct_normalization_properties(mean_scaled)
    hu = np.array([-1024.0, -200.0, 0.0, 150.0, 500.0, 1200.0])
    # nnU-Net's CTNormalization
    nnunet = (np.clip(hu, props["percentile_00_5"], props["percentile_99_5"]) - props["mean"]) / props["std"]
    paper = (np.clip(hu, -200, 500) + 200) / 700 - mean_scaled
    np.testing.assert_allclose(nnunet, paper, atol=1e-12)
    np.testing.assert_allclose(scale_to_unit(hu), [0, 0, 2 / 7, 0.5, 1, 1])


def _nnunet_plans(spacing=(0.8, 0.8, 0.8), median=(180, 150, 150), schemes=("CTNormalization",)):
    return {
        "dataset_name": "Dataset999_Test", "plans_name": "nnUNetPlans",
        "configurations": {
            "2d": {"patch_size": [160, 160]},
            "3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres", "batch_size": 2, "patch_size": [96, 128, 128],
                           "median_image_size_in_voxels": list(median), "spacing": list(spacing),
                           "normalization_schemes": list(schemes), "architecture": {"network_class_name": "x"}}},
        "foreground_intensity_properties_per_channel": {
            str(c): {"max": 900.0, "mean": 120.0, "median": 110.0, "min": -50.0, "percentile_00_5": -20.0,
                     "percentile_99_5": 400.0, "std": 60.0} for c in range(len(schemes))},
    }


def test_build_ppm_plans_changes_network_patch_batch_and_intensity_only():
    source = _nnunet_plans()
    plans = build_ppm_plans(source, {0: 0.25})
    assert plans["plans_name"] == PLANS_NAME and list(plans["configurations"]) == ["3d_fullres"]
    config = plans["configurations"]["3d_fullres"]
    assert config["data_identifier"] == "nnUNetPPMPlans_3d_fullres"
    assert config["patch_size"] == [64, 152, 152] and config["batch_size"] == 4
    assert config["architecture"]["network_class_name"] == NETWORK_CLASS
    assert total_stride(config["architecture"]["arch_kwargs"]["strides"]) == [4, 4, 4]
    assert config["spacing"] == source["configurations"]["3d_fullres"]["spacing"]
    props = plans["foreground_intensity_properties_per_channel"]["0"]
    assert (props["percentile_00_5"], props["percentile_99_5"], props["std"]) == (-200, 500, 700)
    assert props["mean"] == pytest.approx(-200 + 700 * 0.25)
    assert source["plans_name"] == "nnUNetPlans"  # the input is not modified


def test_patch_and_batch_can_be_overridden():
    config = build_ppm_plans(_nnunet_plans(), {0: 0.2}, patch_size=[32, 96, 96], batch_size=2)["configurations"]["3d_fullres"]
    assert config["patch_size"] == [32, 96, 96] and config["batch_size"] == 2
    with pytest.raises(PlanningError, match="does not fit"):
        build_ppm_plans(_nnunet_plans(), {0: 0.2}, patch_size=[32, 90, 96])


def test_dataset_without_a_ct_channel_is_a_clear_error():
    with pytest.raises(PlanningError, match="no CT channel"):
        build_ppm_plans(_nnunet_plans(schemes=("ZScoreNormalization",)), {})


@pytest.mark.parametrize("spacing, strides, scales", [
    ((0.8, 0.8, 0.8), [[1, 1, 1], [2, 2, 2], [2, 2, 2], [1, 1, 1]], [[1, 1, 1], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]),
    ((3.0, 0.8, 0.8), [[1, 1, 1], [1, 2, 2], [2, 2, 2], [1, 1, 1]], [[1, 1, 1], [1, 0.5, 0.5], [0.5, 0.25, 0.25]]),
])
def test_strides_end_with_the_ppm_scale_so_nnunet_supervises_1_half_and_quarter(spacing, strides, scales):
    plans = build_ppm_plans(_nnunet_plans(spacing=spacing), {0: 0.2})
    arch_kwargs = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    assert arch_kwargs["strides"] == strides
    # the PPM-scale entry pools nothing: total stride and patch as without it
    assert total_stride(arch_kwargs["strides"]) == total_stride(pooling_strides(spacing))
    configuration = PlansManager(plans).get_configuration("3d_fullres")
    nnunet_scales = nnUNetTrainer._get_deep_supervision_scales(
        SimpleNamespace(enable_deep_supervision=True, configuration_manager=configuration))
    np.testing.assert_array_equal(nnunet_scales, scales)
