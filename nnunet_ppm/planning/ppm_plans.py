"""Build nnUNetPPMPlans from nnU-Net's nnUNetPlans: what changes is the 3d_fullres configuration.

* network: ``nnunet_ppm.network.fcn_ppm.FCNPPM`` with its arguments (two pooling
  steps; an axis is pooled only while its spacing is at most twice the finest
  one, nnU-Net's anisotropy rule, so thick-slice data pools in-plane first).
  ``arch_kwargs["strides"]`` holds [1, 1, 1], the two poolings, then [1, 1, 1]
  again: that last entry is the PPM scale, which pools nothing. nnU-Net reads
  these entries as ``pool_op_kernel_sizes`` and derives one deep supervision
  scale per entry but the last (1, 1/2, 1/4 for isotropic data), weighting the
  last 0; the extra entry makes those scales match FCNPPM's outputs one to one,
  so the full- and half-resolution outputs are both supervised. It does not
  change the total stride, hence neither pooling nor the patch sizes allowed;
* patch: 64 slices along the slice axis (axis 0 after nnU-Net's
  ``transpose_forward``, the axis of largest spacing), in-plane the median image
  size at the target spacing (the paper's ROIs are 150 x 150), each rounded up to
  a multiple of the network's total stride and never above the median image
  size or ``MAX_IN_PLANE`` in-plane;
* batch size 4 (the paper's);
* intensity: the paper's [-200, 500] HU window scaled to [0, 1] minus the
  training mean, through CTNormalization (see ``intensity``).

Spacing, resampling and everything else stay as nnU-Net planned them.
"""
import copy
from typing import Dict, List, Optional, Sequence

import numpy as np

from nnunet_ppm.network.fcn_ppm import (DEFAULT_DECODER_BLOCKS, DEFAULT_ENCODER_DILATIONS, DEFAULT_FEATURES,
                                        DEFAULT_PPM_KERNELS, strides_with_ppm_scale)
from nnunet_ppm.planning.intensity import ct_normalization_properties

PLANS_NAME = "nnUNetPPMPlans"
CONFIGURATION = "3d_fullres"
NETWORK_CLASS = "nnunet_ppm.network.fcn_ppm.FCNPPM"
PATCH_SLICES = 64
MAX_IN_PLANE = 192
BATCH_SIZE = 4
NUM_POOLINGS = 2


class PlanningError(ValueError):
    """A dataset or an option that nnUNetPPMPlans cannot be made from; the message says what to do."""


def pooling_strides(spacing: Sequence[float], num_poolings: int = NUM_POOLINGS) -> List[List[int]]:
    """Per-stage strides: [1, 1, 1] then one entry per pooling; an axis pools while its spacing <= 2 x the finest."""
    current = np.array(spacing, dtype=float)
    strides = [[1] * len(current)]
    for _ in range(num_poolings):
        pool = [2 if s <= 2 * current.min() else 1 for s in current]
        current = current * pool
        strides.append(pool)
    return strides


def total_stride(strides: Sequence[Sequence[int]]) -> List[int]:
    return np.prod(np.array(strides), axis=0).astype(int).tolist()


def _round_up(value: float, multiple: int) -> int:
    return int(np.ceil(value / multiple) * multiple)


def default_patch_size(median_shape: Sequence[float], stride: Sequence[int]) -> List[int]:
    """64 slices and the median in-plane size, rounded up to the stride, capped by the median image and MAX_IN_PLANE."""
    wanted = [PATCH_SLICES] + [min(s, MAX_IN_PLANE) for s in median_shape[1:]]
    upper = [_round_up(s, k) for s, k in zip(median_shape, stride)]
    return [min(_round_up(w, k), u) for w, k, u in zip(wanted, stride, upper)]


def check_patch_size(patch: Sequence[int], stride: Sequence[int]) -> None:
    """Raise PlanningError unless every axis is a multiple of the stride and keeps >= 2 voxels at the deepest scale."""
    problems = [f"axis {a}: {p} voxels" for a, (p, k) in enumerate(zip(patch, stride)) if p % k or p < 2 * k]
    if len(patch) != len(stride) or problems:
        raise PlanningError(
            f"patch {list(patch)} does not fit the PPM network, whose total stride is {list(stride)}: every axis must "
            f"be a multiple of its stride and at least twice it ({'; '.join(problems) or 'wrong number of axes'})")


def ppm_architecture(pooling: Sequence[Sequence[int]]) -> Dict:
    """The plans' `architecture` entry that builds FCNPPM through nnU-Net's get_network_from_plans.

    `pooling`: the per-stage strides of :func:`pooling_strides`; the entry's ``strides``
    add the PPM-scale entry to them (see the module docstring).
    """
    return {
        "network_class_name": NETWORK_CLASS,
        "arch_kwargs": {
            "features_per_stage": list(DEFAULT_FEATURES),
            "strides": strides_with_ppm_scale(pooling),
            "encoder_dilations": [list(d) for d in DEFAULT_ENCODER_DILATIONS],
            "decoder_blocks_per_stage": list(DEFAULT_DECODER_BLOCKS),
            "ppm_kernels": list(DEFAULT_PPM_KERNELS),
            "bottleneck_ratio": 2,
            "conv_bias": False,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["norm_op", "nonlin"],
    }


def build_ppm_plans(nnunet_plans: Dict, mean_scaled_per_channel: Dict[int, float],
                    patch_size: Optional[Sequence[int]] = None, batch_size: int = BATCH_SIZE) -> Dict:
    """nnUNetPPMPlans from nnUNetPlans and the per-channel training mean of the scaled HU values.

    `mean_scaled_per_channel` maps each CT channel (CTNormalization in nnU-Net's plans) to its mean.
    """
    if CONFIGURATION not in nnunet_plans["configurations"]:
        raise PlanningError(f"nnUNetPlans of {nnunet_plans['dataset_name']} has no {CONFIGURATION} configuration "
                            f"(found {sorted(nnunet_plans['configurations'])}); nnUNetPPMPlans is 3D only")
    source = nnunet_plans["configurations"][CONFIGURATION]
    schemes = source["normalization_schemes"]
    ct_channels = [c for c, scheme in enumerate(schemes) if scheme == "CTNormalization"]
    if not ct_channels:
        raise PlanningError(f"{nnunet_plans['dataset_name']}: no CT channel (normalization schemes {schemes}); the "
                            f"paper's HU window needs a channel named 'CT' in dataset.json")
    if sorted(mean_scaled_per_channel) != ct_channels:
        raise PlanningError(f"need the training mean of CT channels {ct_channels}, got {sorted(mean_scaled_per_channel)}")

    strides = pooling_strides(source["spacing"])
    stride = total_stride(strides)
    patch = list(patch_size) if patch_size is not None else default_patch_size(source["median_image_size_in_voxels"], stride)
    check_patch_size(patch, stride)
    if batch_size < 1:
        raise PlanningError(f"batch size must be at least 1, got {batch_size}")

    plans = copy.deepcopy(nnunet_plans)
    plans["plans_name"] = PLANS_NAME
    configuration = copy.deepcopy(source)
    configuration.update({
        "data_identifier": f"{PLANS_NAME}_{CONFIGURATION}",
        "patch_size": patch,
        "batch_size": batch_size,
        "architecture": ppm_architecture(strides),
    })
    plans["configurations"] = {CONFIGURATION: configuration}
    for channel, mean_scaled in mean_scaled_per_channel.items():
        plans["foreground_intensity_properties_per_channel"][str(channel)].update(
            ct_normalization_properties(mean_scaled))
    return plans
