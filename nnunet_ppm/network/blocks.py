"""Small 3D building blocks: conv-norm-nonlin and the ResNet bottleneck residual block.

Normalisation and non-linearity are passed in as classes plus keyword arguments,
as in dynamic_network_architectures, so plans can choose them.
"""
from typing import Optional, Sequence, Type, Union

import torch
from torch import nn

IntOrTriple = Union[int, Sequence[int]]


def _triple(value: IntOrTriple) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * 3


class ConvNormNonlin(nn.Sequential):
    """3D convolution ('same' padding, optional dilation), then normalisation, then non-linearity.

    `nonlin=None` leaves the non-linearity out (used before a residual addition).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTriple,
                 norm_op: Type[nn.Module], norm_op_kwargs: Optional[dict],
                 nonlin: Optional[Type[nn.Module]], nonlin_kwargs: Optional[dict],
                 dilation: IntOrTriple = 1, conv_bias: bool = False):
        kernel_size, dilation = _triple(kernel_size), _triple(dilation)
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel_size, dilation))
        layers = [nn.Conv3d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=conv_bias),
                  norm_op(out_channels, **(norm_op_kwargs or {}))]
        if nonlin is not None:
            layers.append(nonlin(**(nonlin_kwargs or {})))
        super().__init__(*layers)


class BottleneckResidualBlock(nn.Module):
    """ResNet's three-convolution residual block: 1x1x1 reduce, 3x3x3 (dilated), 1x1x1 expand.

    ``out = nonlin(convs(x) + shortcut(x))``. The shortcut is the identity, or a
    1x1x1 convolution + norm when the channel count changes. ``convs`` holds the
    block's three convolutions (the paper counts these: 13 blocks, 39 layers).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_op: Type[nn.Module], norm_op_kwargs: Optional[dict],
                 nonlin: Type[nn.Module], nonlin_kwargs: Optional[dict],
                 dilation: int = 1, bottleneck_ratio: int = 2, conv_bias: bool = False):
        super().__init__()
        mid = max(out_channels // bottleneck_ratio, 1)
        norm = dict(norm_op=norm_op, norm_op_kwargs=norm_op_kwargs)
        act = dict(nonlin=nonlin, nonlin_kwargs=nonlin_kwargs)
        self.convs = nn.Sequential(
            ConvNormNonlin(in_channels, mid, 1, **norm, **act, conv_bias=conv_bias),
            ConvNormNonlin(mid, mid, 3, **norm, **act, dilation=dilation, conv_bias=conv_bias),
            ConvNormNonlin(mid, out_channels, 1, **norm, nonlin=None, nonlin_kwargs=None, conv_bias=conv_bias),
        )
        self.shortcut = nn.Identity() if in_channels == out_channels else \
            ConvNormNonlin(in_channels, out_channels, 1, **norm, nonlin=None, nonlin_kwargs=None, conv_bias=conv_bias)
        self.nonlin = nonlin(**(nonlin_kwargs or {}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin(self.convs(x) + self.shortcut(x))


def residual_stage(in_channels: int, out_channels: int, dilations: Sequence[int], **block_kwargs) -> nn.Sequential:
    """A run of bottleneck blocks, one per entry of `dilations`; the first one maps in -> out channels."""
    return nn.Sequential(*[
        BottleneckResidualBlock(in_channels if i == 0 else out_channels, out_channels, dilation=d, **block_kwargs)
        for i, d in enumerate(dilations)
    ])
