"""The pyramid pooling module (PPM) of PSPNet, in 3D, as the paper uses it.

A shortcut plus one branch per pooling kernel k (the paper: 2, 4, 8, 16). Each
branch average-pools with kernel = stride = k, applies a 1x1x1 convolution
and a non-linearity, and a transposed convolution (kernel = stride = k) brings
it back to the input size. The transposed convolution is depthwise (one
learned k^3 kernel per channel): a full one would hold C^2 k^3 weights, 4.2 M
for 32 channels at k = 16, more than the rest of the network. The input and all branch outputs are concatenated.

Sizes that k does not divide (e.g. 38 voxels at 1/4 of a 152-voxel patch, or
16 slices under k = 16 and below): the input is zero-padded at the far end to
ceil(n / k) * k and each window's sum is divided by the number of real voxels
it holds, so the last window of an axis averages only the voxels it covers
(pooling with ceil_mode, also when n < k). The transposed convolution returns
ceil(n / k) * k voxels, which are cropped back to n. Every branch output
therefore lines up voxel for voxel with the input, for any input size.

The branches have no normalisation layer: their pooled maps can be a single
voxel, where instance normalisation is undefined.

Initialisation (ours; the paper gives none): each transposed convolution starts
as nearest-neighbour upsampling of its pooled features (weights 1, bias 0), so
a branch begins as "pool, 1x1x1 conv, upsample" (PSPNet upsamples bilinearly;
with kernel = stride each output voxel sees one pooled voxel, so nearest
neighbour is the upsampling this layer can represent exactly) and a constant
map passes its upsampling unchanged. The weights stay learnable. He
initialisation would treat each output voxel as having a fan-in of k^3: a gain
of about sqrt(2 / k^3), 1/2 at k = 2 down to 1/45 at k = 16, which left the
branches about 2x to 50x weaker than the shortcut at the start of training.
"""
from typing import Optional, Sequence, Type

import torch
import torch.nn.functional as F
from torch import nn


def average_pool_partial_windows(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """3D average pooling, kernel = stride = `kernel`, whose last window per axis averages only the voxels it holds.

    Output size per axis: ceil(n / kernel), also for n < kernel.
    """
    spatial = x.shape[2:]
    pad = []
    for n in reversed(spatial):  # F.pad lists the last axis first; pad each axis at its end
        pad += [0, -n % kernel]
    window_sum = F.avg_pool3d(F.pad(x, pad), kernel)
    real_voxels = F.avg_pool3d(F.pad(torch.ones((1, 1, *spatial), dtype=x.dtype, device=x.device), pad), kernel)
    return window_sum / real_voxels


class NearestUpsamplingConvTranspose3d(nn.ConvTranspose3d):
    """Depthwise transposed convolution, kernel = stride = `kernel`, initialised as nearest-neighbour upsampling.

    ``reset_parameters`` (called by the constructor, and by ``FCNPPM.initialize``
    in place of He initialisation) sets every weight to 1 and the bias to 0.
    """

    def __init__(self, channels: int, kernel: int):
        super().__init__(channels, channels, kernel, stride=kernel, groups=channels, bias=True)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)


class PyramidPoolingBranch(nn.Module):
    """Pool (kernel = stride = k), 1x1x1 conv + non-linearity, depthwise transposed conv back to the input size."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int,
                 nonlin: Type[nn.Module], nonlin_kwargs: Optional[dict]):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv3d(in_channels, out_channels, 1, bias=True)
        self.nonlin = nonlin(**(nonlin_kwargs or {}))
        self.deconv = NearestUpsamplingConvTranspose3d(out_channels, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        y = self.deconv(self.nonlin(self.conv(average_pool_partial_windows(x, self.kernel))))
        return y[:, :, :spatial[0], :spatial[1], :spatial[2]]


class PyramidPoolingModule(nn.Module):
    """Concatenate the input with one pooled-and-restored branch per kernel in `kernels`."""

    def __init__(self, in_channels: int, kernels: Sequence[int], branch_channels: int,
                 nonlin: Type[nn.Module], nonlin_kwargs: Optional[dict]):
        super().__init__()
        self.branches = nn.ModuleList(
            PyramidPoolingBranch(in_channels, branch_channels, k, nonlin, nonlin_kwargs) for k in kernels)
        self.out_channels = in_channels + branch_channels * len(kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x] + [branch(x) for branch in self.branches], dim=1)
