"""3D_FCN_PPM: the network of Yang et al. (ICPR 2018), following nnU-Net's architecture contract.

Our reading of the paper (section II.A, Fig. 3; the figure's layer table is not
reproduced in the text, so the details below are ours where it is silent):

* Residual encoder. A 3x3x3 stem convolution, then stages of ResNet bottleneck
  blocks (1x1x1, 3x3x3, 1x1x1 convolutions). Consecutive stages are separated by
  max pooling, and there are only two of them (kernel = stride = ``strides[s]``;
  the paper: "we decrease the number of pooling layers to two"), so the deepest
  features sit at 1/4 resolution. Widths stay narrow (the paper chose depth
  over width): 16, 48, 128 features by default, sized so that a training step
  at the paper's settings (batch 4, 64x160x160) fits a 12 GB card with fp16.
* Dilated convolutions in the deepest stage. Its blocks use the dilation rates
  ``encoder_dilations[-1]`` (default 1, 2, 5, 2, 1: a saw-tooth that avoids the
  gridding of repeated equal rates) to widen the receptive field without pooling.
* Pyramid pooling module on the deepest features (see ``pyramid_pooling``):
  branches with pooling kernels 2, 4, 8, 16; the concatenation is fused back to
  the stage's width by a 3x3x3 convolution ("fed into the following layer").
* "Gradually enhanced feature module" (GEFM). The title names it, the text does
  not describe it. We read it as a decoder that restores resolution one pooling
  step at a time (1/4 -> 1/2 -> 1) and, at each step, enhances the upsampled
  features with the encoder features of that scale: transposed convolution
  (kernel = stride = the pooling it undoes), concatenation with the encoder's
  skip features, then bottleneck residual blocks that fuse the two.
* 13 residual blocks in all with the defaults: encoder 2 + 2 + 5, decoder 2 + 2,
  i.e. 39 convolution layers inside the blocks (the paper's count). Stem, PPM,
  fusion, upsampling, projection shortcuts and the 1x1x1 output heads are
  counted separately.

nnU-Net contract: ``FCNPPM(input_channels, num_classes, deep_supervision, **arch_kwargs)``;
``decoder.deep_supervision`` switches between one full-resolution output and a
list of outputs, full resolution first; ``initialize`` is applied by
``get_network_from_plans``.

``strides``: one entry per stage (``strides[0]`` = [1, 1, 1], the full-resolution
stage; ``strides[s]`` the pooling before stage s), then one more entry, all ones,
that stands for the PPM scale: it pools nothing and leaves the total stride (and
so the patch sizes the network accepts) unchanged. With deep supervision the
network returns one output per scale: after each decoder step and, for that last
entry, from the fused PPM features (1, 1/2, 1/4 for the default). nnU-Net derives
its deep supervision scales from the same entries (``1 / cumprod(strides)``
without its last row: 1, 1/2, 1/4) and weights them 2/3, 1/3, 0 (1, 1/2, 1/4
normalised after setting the last to 0, or 1e-6 under DDP, as for its own
U-Nets), so the full- and half-resolution outputs are both supervised.

Plans without that entry (written by nnunet_ppm before it) still build the
network they were trained with, without the PPM-scale output: prediction and
training without deep supervision (PPMTrainer) work as before. With deep
supervision they are refused with a message saying how to update them, since
nnU-Net would then supervise the full-resolution output only.

``initialize`` is nnU-Net's He initialisation (``InitWeights_He``), except for the
PPM's upsampling transposed convolutions, which start as nearest-neighbour
upsampling (see ``pyramid_pooling``).
"""
from typing import List, Optional, Sequence, Type, Union

import numpy as np
import torch
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_ppm.network.blocks import ConvNormNonlin, residual_stage
from nnunet_ppm.network.pyramid_pooling import NearestUpsamplingConvTranspose3d, PyramidPoolingModule

DEFAULT_FEATURES = (16, 48, 128)
DEFAULT_POOLING_STRIDES = ((1, 1, 1), (2, 2, 2), (2, 2, 2))
DEFAULT_ENCODER_DILATIONS = ((1, 1), (1, 1), (1, 2, 5, 2, 1))
DEFAULT_DECODER_BLOCKS = (2, 2)
DEFAULT_PPM_KERNELS = (2, 4, 8, 16)


def strides_with_ppm_scale(pooling_strides: Sequence[Sequence[int]]) -> List[List[int]]:
    """FCNPPM's ``strides``: the per-stage pooling strides, then the PPM-scale entry (all ones)."""
    return [list(s) for s in pooling_strides] + [[1] * len(pooling_strides[0])]


DEFAULT_STRIDES = tuple(map(tuple, strides_with_ppm_scale(DEFAULT_POOLING_STRIDES)))


class InitWeightsHeNearestUpsampling:
    """nnU-Net's He initialisation for every convolution, except that the PPM's upsampling starts as nearest neighbour.

    Called on every module by ``network.apply``; a NearestUpsamplingConvTranspose3d
    is reset to its own initialisation (weights 1, bias 0) instead of He's.
    """

    def __init__(self, neg_slope: float = 1e-2):
        self.he = InitWeights_He(neg_slope)

    def __call__(self, module: nn.Module) -> None:
        if isinstance(module, NearestUpsamplingConvTranspose3d):
            module.reset_parameters()
        else:
            self.he(module)


class ResidualEncoder(nn.Module):
    """Stem, then residual stages separated by max pooling; returns the features of every stage."""

    def __init__(self, input_channels: int, features_per_stage: Sequence[int], strides: Sequence[Sequence[int]],
                 encoder_dilations: Sequence[Sequence[int]], **block_kwargs):
        super().__init__()
        block_kwargs_no_ratio = {k: v for k, v in block_kwargs.items() if k != "bottleneck_ratio"}
        self.stem = ConvNormNonlin(input_channels, features_per_stage[0], 3, **block_kwargs_no_ratio)
        self.pools = nn.ModuleList(nn.MaxPool3d(tuple(s), tuple(s)) for s in strides[1:])
        self.stages = nn.ModuleList(
            residual_stage(features_per_stage[max(s - 1, 0)], features_per_stage[s], encoder_dilations[s], **block_kwargs)
            for s in range(len(features_per_stage)))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        skips = [self.stages[0](self.stem(x))]
        for pool, stage in zip(self.pools, self.stages[1:]):
            skips.append(stage(pool(skips[-1])))
        return skips


class GraduallyEnhancedDecoder(nn.Module):
    """Upsample one pooling step at a time, concatenate the encoder features of that scale, fuse with residual blocks.

    With ``deep_supervision`` it returns one output per decoder scale and, with
    ``ppm_scale_output``, one more from its input (the fused PPM features), full
    resolution first. ``seg_layers`` holds the output heads deepest first; the last
    one makes the only output without deep supervision.
    """

    def __init__(self, features_per_stage: Sequence[int], strides: Sequence[Sequence[int]],
                 decoder_blocks_per_stage: Sequence[int], num_classes: int, deep_supervision: bool,
                 ppm_scale_output: bool, **block_kwargs):
        super().__init__()
        self.deep_supervision = deep_supervision
        self.ppm_scale_output = ppm_scale_output
        # decoder step i (0 = deepest) brings stage n-1-i up to stage n-2-i
        n = len(features_per_stage)
        targets = list(range(n - 2, -1, -1))
        self.upsamplers = nn.ModuleList(
            nn.ConvTranspose3d(features_per_stage[s + 1], features_per_stage[s], tuple(strides[s + 1]),
                               stride=tuple(strides[s + 1]), bias=False) for s in targets)
        self.stages = nn.ModuleList(
            residual_stage(2 * features_per_stage[s], features_per_stage[s], [1] * decoder_blocks_per_stage[i],
                           **block_kwargs) for i, s in enumerate(targets))
        supervised = ([n - 1] if ppm_scale_output else []) + targets
        self.seg_layers = nn.ModuleList(nn.Conv3d(features_per_stage[s], num_classes, 1, bias=True) for s in supervised)

    def forward(self, deepest: torch.Tensor, skips: Sequence[torch.Tensor]) -> Union[torch.Tensor, List[torch.Tensor]]:
        x, outputs = deepest, []
        step_heads = self.seg_layers[1:] if self.ppm_scale_output else self.seg_layers
        if self.deep_supervision and self.ppm_scale_output:
            outputs.append(self.seg_layers[0](x))
        for up, stage, seg, skip in zip(self.upsamplers, self.stages, step_heads, reversed(skips[:-1])):
            x = stage(torch.cat((up(x), skip), dim=1))
            if self.deep_supervision:
                outputs.append(seg(x))
        if not self.deep_supervision:
            return self.seg_layers[-1](x)
        return outputs[::-1]


class FCNPPM(nn.Module):
    """3D fully convolutional network with pyramid pooling module (3D_FCN_PPM), see the module docstring."""

    initialize = InitWeightsHeNearestUpsampling(1e-2)

    def __init__(self, input_channels: int, num_classes: int,
                 features_per_stage: Sequence[int] = DEFAULT_FEATURES,
                 strides: Sequence[Sequence[int]] = DEFAULT_STRIDES,
                 encoder_dilations: Sequence[Sequence[int]] = DEFAULT_ENCODER_DILATIONS,
                 decoder_blocks_per_stage: Sequence[int] = DEFAULT_DECODER_BLOCKS,
                 ppm_kernels: Sequence[int] = DEFAULT_PPM_KERNELS,
                 ppm_branch_features: Optional[int] = None,
                 bottleneck_ratio: int = 2,
                 conv_bias: bool = False,
                 norm_op: Type[nn.Module] = nn.InstanceNorm3d,
                 norm_op_kwargs: Optional[dict] = None,
                 nonlin: Type[nn.Module] = nn.LeakyReLU,
                 nonlin_kwargs: Optional[dict] = None,
                 deep_supervision: bool = False):
        super().__init__()
        n = len(features_per_stage)
        if len(strides) not in (n, n + 1) or len(encoder_dilations) != n or len(decoder_blocks_per_stage) != n - 1:
            raise ValueError(f"FCNPPM: features_per_stage ({n} stages) and encoder_dilations "
                             f"({len(encoder_dilations)}) must have one entry per stage, strides ({len(strides)}) one "
                             f"per stage plus the PPM-scale entry, decoder_blocks_per_stage "
                             f"({len(decoder_blocks_per_stage)}) one per decoder step ({n - 1})")
        if any(s != 1 for s in strides[0]):
            raise ValueError(f"FCNPPM: the first stage works at full resolution, strides[0] must be [1, 1, 1], got {strides[0]}")
        ppm_scale_output = len(strides) == n + 1
        if ppm_scale_output and any(s != 1 for s in strides[-1]):
            raise ValueError(f"FCNPPM: the last strides entry stands for the PPM scale and pools nothing, it must be "
                             f"all ones, got {strides[-1]} (strides {strides})")
        if deep_supervision and not ppm_scale_output:
            raise ValueError(
                f"FCNPPM: strides {strides} have no PPM-scale entry (plans written by nnunet_ppm before deep "
                f"supervision covered the PPM scale); with them nnU-Net's deep supervision would train the "
                f"full-resolution output only. Re-run `nnunet_ppm plan -d DATASET --no-preprocess` (with the same "
                f"--patch and --batch-size, if given) or append {[1] * len(strides[0])} to "
                f"architecture.arch_kwargs.strides in the plans file; prediction and PPMTrainer work with them "
                f"as they are")
        norm_op_kwargs = {"eps": 1e-5, "affine": True} if norm_op_kwargs is None else norm_op_kwargs
        nonlin_kwargs = {"inplace": True} if nonlin_kwargs is None else nonlin_kwargs
        block_kwargs = dict(norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, nonlin=nonlin, nonlin_kwargs=nonlin_kwargs,
                            conv_bias=conv_bias)
        self.total_stride = np.prod(np.array(strides), axis=0).astype(int).tolist()

        self.encoder = ResidualEncoder(input_channels, features_per_stage, strides[:n], encoder_dilations,
                                       bottleneck_ratio=bottleneck_ratio, **block_kwargs)
        deepest = features_per_stage[-1]
        self.ppm = PyramidPoolingModule(deepest, ppm_kernels, ppm_branch_features or max(deepest // 4, 1),
                                        nonlin, nonlin_kwargs)
        self.ppm_fusion = ConvNormNonlin(self.ppm.out_channels, deepest, 3, **block_kwargs)
        self.decoder = GraduallyEnhancedDecoder(features_per_stage, strides[:n], decoder_blocks_per_stage, num_classes,
                                                deep_supervision, ppm_scale_output, bottleneck_ratio=bottleneck_ratio,
                                                **block_kwargs)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        if any(size % stride for size, stride in zip(x.shape[2:], self.total_stride)):
            raise ValueError(f"FCNPPM: input of spatial size {tuple(x.shape[2:])} is not a multiple of the network's "
                             f"total stride {self.total_stride} along every axis (pad or choose another patch)")
        skips = self.encoder(x)
        return self.decoder(self.ppm_fusion(self.ppm(skips[-1])), skips)
