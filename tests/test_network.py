"""The 3D_FCN_PPM network: shapes, nnU-Net contract, the paper's layer counts, the PPM's partial windows and init."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager
from torch import nn

from nnunet_ppm.dataset_conversion.synthesize import synthesize_case
from nnunet_ppm.network import FCNPPM
from nnunet_ppm.network.blocks import BottleneckResidualBlock
from nnunet_ppm.network.fcn_ppm import strides_with_ppm_scale
from nnunet_ppm.network.pyramid_pooling import PyramidPoolingBranch, average_pool_partial_windows
from nnunet_ppm.planning.intensity import scale_to_unit
from nnunet_ppm.planning.ppm_plans import pooling_strides, ppm_architecture

ISOTROPIC_POOLING = [[1, 1, 1], [2, 2, 2], [2, 2, 2]]
ANISOTROPIC_POOLING = [[1, 1, 1], [1, 2, 2], [2, 2, 2]]
# PPM branch output std / shortcut std at initialisation: 0.6-1.1 with nearest-neighbour upsampling on KiTS19-shaped
# 64x152x152 ROIs; He-initialised upsampling gave about 0.5, 0.2, 0.06, 0.02 for k = 2, 4, 8, 16
RATIO_FLOOR = 0.3


def _network(**kwargs) -> FCNPPM:
    torch.manual_seed(0)
    net = FCNPPM(1, 3, **kwargs)
    net.apply(net.initialize)
    return net.eval()


def _network_from_plans(pooling, deep_supervision: bool, seed: int = 0, **arch_kwargs) -> FCNPPM:
    """FCNPPM as nnU-Net builds it from the architecture entry `nnunet_ppm plan` writes (initialize applied)."""
    architecture = ppm_architecture(pooling)
    torch.manual_seed(seed)
    return get_network_from_plans(architecture["network_class_name"], {**architecture["arch_kwargs"], **arch_kwargs},
                                  architecture["_kw_requires_import"], 1, 3, deep_supervision=deep_supervision).eval()


def _nnunet_deep_supervision_scales(strides):
    """nnUNetTrainer._get_deep_supervision_scales for a configuration whose arch_kwargs hold `strides`."""
    configuration = ConfigurationManager({"architecture": {"arch_kwargs": {"strides": strides}}})
    return nnUNetTrainer._get_deep_supervision_scales(
        SimpleNamespace(enable_deep_supervision=True, configuration_manager=configuration))


def _targets_per_scale(scales, shape):
    """A label map downsampled to each deep supervision scale by nnU-Net's own transforms."""
    transforms = nnUNetTrainer.get_validation_transforms(scales)
    return transforms(segmentation=torch.zeros((1, *shape), dtype=torch.int16))["segmentation"]


@pytest.mark.parametrize("shape", [(16, 32, 32), (64, 152, 152), (20, 36, 44), (8, 8, 8)])
def test_output_has_input_size_for_sizes_the_bins_do_and_do_not_divide(shape):
    with torch.no_grad():
        out = _network()(torch.randn(1, 1, *shape))
    assert out.shape == (1, 3, *shape)


def test_anisotropic_strides_need_multiples_of_the_total_stride_only():
    net = _network(strides=strides_with_ppm_scale(ANISOTROPIC_POOLING))
    assert net.total_stride == [2, 4, 4]
    with torch.no_grad():
        assert net(torch.randn(1, 1, 6, 12, 20)).shape == (1, 3, 6, 12, 20)


def test_input_not_a_multiple_of_the_stride_is_a_clear_error():
    with pytest.raises(ValueError, match="multiple of the network's total stride"):
        _network()(torch.randn(1, 1, 16, 30, 32))


@pytest.mark.parametrize("pooling, expected_shapes", [
    (ISOTROPIC_POOLING, [(8, 16, 24), (4, 8, 12), (2, 4, 6)]),      # 1, 1/2, 1/4
    (ANISOTROPIC_POOLING, [(8, 16, 24), (8, 8, 12), (4, 4, 6)]),    # thick slices: in-plane pooled first
])
def test_deep_supervision_outputs_at_full_half_and_ppm_scale_match_nnunets_scales_one_to_one(pooling, expected_shapes):
    net = _network_from_plans(pooling, deep_supervision=True)
    shape = (8, 16, 24)
    with torch.no_grad():
        outputs = net(torch.randn(2, 1, *shape))
    assert [tuple(o.shape[2:]) for o in outputs] == expected_shapes
    assert all(o.shape[:2] == (2, 3) for o in outputs)
    # nnU-Net's scales from the plans' strides, and its targets at those scales, line up with the outputs
    scales = _nnunet_deep_supervision_scales(ppm_architecture(pooling)["arch_kwargs"]["strides"])
    assert len(scales) == len(outputs)
    assert [tuple(t.shape[1:]) for t in _targets_per_scale(scales, shape)] == expected_shapes

    net.decoder.deep_supervision = False  # what nnU-Net's set_deep_supervision_enabled(False) does
    with torch.no_grad():
        output = net(torch.randn(1, 1, *shape))
    assert torch.is_tensor(output) and output.shape == (1, 3, *shape)


def test_plans_without_the_ppm_scale_entry_build_the_network_they_trained_but_refuse_deep_supervision():
    old_strides = {"strides": ISOTROPIC_POOLING}  # what nnunet_ppm plan wrote before the PPM-scale entry
    net = _network_from_plans(ISOTROPIC_POOLING, deep_supervision=False, **old_strides)
    # the old layout of the output heads (1/2, then full resolution), so old checkpoints load
    assert [tuple(head.weight.shape) for head in net.decoder.seg_layers] == [(3, 48, 1, 1, 1), (3, 16, 1, 1, 1)]
    with torch.no_grad():
        assert net(torch.randn(1, 1, 8, 16, 24)).shape == (1, 3, 8, 16, 24)
    with pytest.raises(ValueError, match=r"no PPM-scale entry.*nnunet_ppm plan"):
        _network_from_plans(ISOTROPIC_POOLING, deep_supervision=True, **old_strides)


def test_ppm_scale_entry_must_pool_nothing():
    with pytest.raises(ValueError, match="PPM scale and pools nothing"):
        FCNPPM(1, 3, strides=ISOTROPIC_POOLING + [[1, 2, 2]])


def test_the_papers_counts_13_residual_blocks_39_convolutions_2_poolings():
    net = _network()
    blocks = [m for m in net.modules() if isinstance(m, BottleneckResidualBlock)]
    assert len(blocks) == 13
    assert sum(isinstance(m, nn.Conv3d) for b in blocks for m in b.convs.modules()) == 39
    assert sum(isinstance(m, nn.MaxPool3d) for m in net.modules()) == 2
    assert [b.kernel for b in net.ppm.branches] == [2, 4, 8, 16]
    deepest_dilations = [b.convs[1][0].dilation for b in net.encoder.stages[-1]]
    assert [d[0] for d in deepest_dilations] == [1, 2, 5, 2, 1]


def test_parameter_count_of_the_default_network():
    net = _network()
    # pinned: a change of the default architecture must be deliberate (and the README updated)
    assert sum(p.numel() for p in net.parameters()) == 1_833_465
    # depthwise transposed convolutions keep the PPM small: conv (C*b + b) + deconv (b*k^3 + b) per branch
    c, b = 128, 32
    assert sum(p.numel() for p in net.ppm.parameters()) == sum(c * b + b + b * k ** 3 + b for k in (2, 4, 8, 16))


def test_partial_window_pooling_averages_only_the_voxels_each_window_holds():
    x = torch.arange(1 * 1 * 3 * 5 * 6, dtype=torch.float64).reshape(1, 1, 3, 5, 6)
    pooled = average_pool_partial_windows(x, 4)
    assert pooled.shape == (1, 1, 1, 2, 2)
    a = x[0, 0].numpy()
    expected = [[a[:, :4, :4].mean(), a[:, :4, 4:].mean()], [a[:, 4:, :4].mean(), a[:, 4:, 4:].mean()]]
    np.testing.assert_allclose(pooled[0, 0, 0].numpy(), expected)


def test_ppm_branch_output_lines_up_with_its_input():
    torch.manual_seed(0)
    branch = PyramidPoolingBranch(2, 2, 16, nn.ReLU, None).double()
    x = torch.randn(1, 2, 4, 38, 38, dtype=torch.float64)
    assert branch(x).shape == (1, 2, 4, 38, 38)


def test_he_initialisation():
    net = _network()
    conv = net.encoder.stages[1][0].convs[1][0]
    fan_in = conv.in_channels * np.prod(conv.kernel_size)
    expected_std = np.sqrt(2 / (1 + 0.01 ** 2) / fan_in)
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.1)


def test_nnunet_builds_it_from_the_plans_architecture_entry():
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    architecture = ppm_architecture([[1, 1, 1], [2, 2, 2], [2, 2, 2]])
    net = get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                 architecture["_kw_requires_import"], 1, 3, deep_supervision=True)
    assert isinstance(net, FCNPPM) and net.decoder.deep_supervision
    assert isinstance(net.decoder.stages[0][0].convs[0][1], nn.InstanceNorm3d)


@pytest.mark.parametrize("pooling", [ISOTROPIC_POOLING, ANISOTROPIC_POOLING])
def test_ppm_upsampling_has_gain_1_at_initialisation_in_the_network_built_from_plans(pooling):
    net = _network_from_plans(pooling, deep_supervision=True)
    torch.manual_seed(1)
    for branch in net.ppm.branches:
        k, channels = branch.kernel, branch.deconv.in_channels
        constant = torch.full((1, channels, 2, 3, 1), 0.37)
        with torch.no_grad():
            assert torch.equal(branch.deconv(constant), torch.full((1, channels, 2 * k, 3 * k, k), 0.37)), k
            # nearest neighbour: every pooled voxel fills its k^3 block
            pooled = torch.randn(1, channels, 2, 3, 1)
            nearest = pooled.repeat_interleave(k, 2).repeat_interleave(k, 3).repeat_interleave(k, 4)
            assert torch.equal(branch.deconv(pooled), nearest), k
        assert branch.deconv.weight.requires_grad and branch.deconv.bias.requires_grad


def _ct_roi_input(seed: int = 0):
    """A synthetic CT (tiny preset) normalised as nnUNetPPMPlans does, cropped to multiples of 4 voxels; its spacing."""
    ct, _, spacing = synthesize_case(0, seed=seed, preset="tiny")
    scaled = scale_to_unit(ct)
    scaled = scaled - scaled.mean()  # the plans subtract the training mean
    crop = tuple(slice(0, n - n % 4) for n in scaled.shape)
    return torch.from_numpy(scaled[crop]).float()[None, None], spacing


def test_ppm_branches_start_on_the_scale_of_the_shortcut_on_a_ct(capsys):
    """Each branch's output std relative to the shortcut's (the PPM input) at init, on a CT through the encoder."""
    x, spacing = _ct_roi_input()
    net = _network_from_plans(pooling_strides(spacing), deep_supervision=False)
    with torch.no_grad():
        shortcut = net.encoder(x)[-1]
        ratios = {branch.kernel: (branch(shortcut).std() / shortcut.std()).item() for branch in net.ppm.branches}
    with capsys.disabled():
        print(f"\nPPM branch output std / shortcut std at initialisation, input {tuple(x.shape[2:])}, "
              f"PPM input {tuple(shortcut.shape[2:])}: " + ", ".join(f"k={k}: {r:.3f}" for k, r in ratios.items()))
    assert all(r > RATIO_FLOOR for r in ratios.values()), ratios
