"""The 3D_FCN_PPM network: shapes, nnU-Net contract, the paper's layer counts, the PPM's partial windows."""
import numpy as np
import pytest
import torch
from torch import nn

from nnunet_ppm.network import FCNPPM
from nnunet_ppm.network.blocks import BottleneckResidualBlock
from nnunet_ppm.network.pyramid_pooling import PyramidPoolingBranch, average_pool_partial_windows
from nnunet_ppm.planning.ppm_plans import ppm_architecture

ANISOTROPIC = ((1, 1, 1), (1, 2, 2), (2, 2, 2))


def _network(**kwargs) -> FCNPPM:
    torch.manual_seed(0)
    net = FCNPPM(1, 3, **kwargs)
    net.apply(net.initialize)
    return net.eval()


@pytest.mark.parametrize("shape", [(16, 32, 32), (64, 152, 152), (20, 36, 44), (8, 8, 8)])
def test_output_has_input_size_for_sizes_the_bins_do_and_do_not_divide(shape):
    with torch.no_grad():
        out = _network()(torch.randn(1, 1, *shape))
    assert out.shape == (1, 3, *shape)


def test_anisotropic_strides_need_multiples_of_the_total_stride_only():
    net = _network(strides=ANISOTROPIC)
    assert net.total_stride == [2, 4, 4]
    with torch.no_grad():
        assert net(torch.randn(1, 1, 6, 12, 20)).shape == (1, 3, 6, 12, 20)


def test_input_not_a_multiple_of_the_stride_is_a_clear_error():
    with pytest.raises(ValueError, match="multiple of the network's total stride"):
        _network()(torch.randn(1, 1, 16, 30, 32))


@pytest.mark.parametrize("strides", [((1, 1, 1), (2, 2, 2), (2, 2, 2)), ANISOTROPIC])
def test_deep_supervision_outputs_match_the_scales_nnunet_derives_from_strides(strides):
    net = _network(strides=strides)
    net.decoder.deep_supervision = True
    shape = np.array((8, 16, 24))
    with torch.no_grad():
        outputs = net(torch.randn(2, 1, *shape))
    # nnUNetTrainer._get_deep_supervision_scales
    scales = list(list(i) for i in 1 / np.cumprod(np.vstack(strides), axis=0))[:-1]
    assert [tuple(o.shape[2:]) for o in outputs] == [tuple((shape * np.array(s)).astype(int)) for s in scales]
    assert all(o.shape[:2] == (2, 3) for o in outputs)
    net.decoder.deep_supervision = False
    with torch.no_grad():
        assert torch.is_tensor(net(torch.randn(1, 1, *shape)))


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
    assert sum(p.numel() for p in net.parameters()) == 1_833_078
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
