"""3D dense CRF on softmax probabilities and the CT, restricted to the predicted foreground.

Entry point :func:`dense_crf`. The mean-field inference itself is a
*backend*: ``"pydensecrf"`` (reference; CPU, one core, permutohedral
lattice) or ``"torch"`` (``crf_torch``: grids at a fraction of the kernels'
width, an active set where few voxels are uncertain; on the device asked for,
else the GPU when present, one CPU thread otherwise). Both see the same blocks
and the same parameters, so their results can be compared voxel by voxel.
"""
import functools
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

from nnunet_ppm.postprocessing.argmax import argmax_labels
from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_ppm.postprocessing.crf_pydensecrf import mean_field_pydensecrf
from nnunet_ppm.postprocessing.crf_regions import foreground_boxes, split_into_blocks
from nnunet_ppm.postprocessing.crf_torch import mean_field_torch

MeanField = Callable[[np.ndarray, np.ndarray, Sequence[float], CRFParams], np.ndarray]

CRF_BACKENDS: Dict[str, MeanField] = {
    "pydensecrf": mean_field_pydensecrf,
    "torch": mean_field_torch,
}


def dense_crf(probabilities: np.ndarray, image: np.ndarray, spacing: Sequence[float],
              params: CRFParams = CRFParams(), backend: str = "pydensecrf",
              device: Optional[str] = None) -> np.ndarray:
    """Labels refined by the dense CRF inside the grown bounding boxes of the predicted foreground.

    Args:
        probabilities: softmax probabilities, shape (classes, z, y, x); class 0 is background.
        image: the CT in HU, shape (z, y, x), same geometry as ``probabilities``.
        spacing: voxel size in mm per array axis (nnU-Net's ``properties["spacing"]``).
        params: CRF parameters (defaults documented in ``CRFParams``).
        backend: mean-field implementation, a key of ``CRF_BACKENDS``.
        device: where the torch backend runs ("cpu", "cuda", ...; None: the GPU when present); pydensecrf runs on
            the CPU.

    Returns:
        uint8 labels, shape (z, y, x): the CRF result inside the boxes, the argmax elsewhere.
        A prediction without foreground is returned as its (empty) argmax.
    """
    if probabilities.shape[1:] != image.shape or len(spacing) != image.ndim:
        raise ValueError(f"probabilities of shape {probabilities.shape} do not match image of shape "
                         f"{image.shape} and spacing {tuple(spacing)}")
    if backend not in CRF_BACKENDS:
        raise ValueError(f"unknown CRF backend {backend!r}; available: {sorted(CRF_BACKENDS)}")
    mean_field = CRF_BACKENDS[backend]
    if backend == "torch" and device is not None:
        mean_field = functools.partial(mean_field, device=torch.device(device))
    labels = argmax_labels(probabilities)
    margin = [int(np.ceil(params.margin_mm / s)) for s in spacing]
    low, high = params.hu_window
    for box in foreground_boxes(labels != 0, margin):
        for block, core in split_into_blocks(box, params.max_block_voxels, margin):
            block_probabilities = probabilities[(slice(None), *block)].astype(np.float32, copy=False)
            block_image = np.clip(image[block], low, high).astype(np.float32)
            block_labels = mean_field(block_probabilities, block_image, spacing, params)
            core_in_block = tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(core, block))
            labels[core] = block_labels[core_in_block]
    return labels
