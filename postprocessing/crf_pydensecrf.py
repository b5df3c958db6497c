"""Mean-field inference of the dense CRF with pydensecrf (the reference backend).

pydensecrf's N-dimensional ``DenseCRF`` takes per-voxel feature vectors; the
kernels are Gaussians of unit width in feature space, so features are
positions in mm divided by the spatial width and HU divided by the intensity
width. pydensecrf runs on one CPU core and filters with a permutohedral lattice.
It is imported when this backend runs, so that the torch backend also works
where the C extension is not installed (the GPU machines' images lack it).
"""
from typing import Sequence

import numpy as np

from nnunet_ppm.postprocessing.crf_params import CRFParams


def unary_energy(probabilities: np.ndarray, floor: float) -> np.ndarray:
    """-log of the probabilities clipped below at ``floor``, as a float32 (classes, voxels) array."""
    flat = probabilities.reshape(probabilities.shape[0], -1)
    return np.ascontiguousarray(-np.log(np.clip(flat, floor, 1.0, dtype=np.float32)))


def positions_mm(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Voxel centre coordinates in mm as a float32 (3, voxels) array."""
    axes = [np.arange(n, dtype=np.float32) * np.float32(s) for n, s in zip(shape, spacing)]
    return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")])


def mean_field_pydensecrf(probabilities: np.ndarray, image: np.ndarray, spacing: Sequence[float],
                          params: CRFParams) -> np.ndarray:
    """Dense CRF labels of one block with pydensecrf.

    Args:
        probabilities: float32 softmax probabilities, shape (classes, *block).
        image: CT values in HU already clipped to ``params.hu_window``, shape block.
        spacing: voxel size in mm per array axis.
        params: CRF parameters.

    Returns:
        uint8 labels (argmax of the mean-field marginals), shape block.
    """
    import pydensecrf.densecrf as dcrf

    n_classes = probabilities.shape[0]
    crf = dcrf.DenseCRF(image.size, n_classes)
    crf.setUnaryEnergy(unary_energy(probabilities, params.unary_floor))
    positions = positions_mm(image.shape, spacing)
    crf.addPairwiseEnergy(np.ascontiguousarray(positions / np.float32(params.smoothness_sigma_mm)),
                          compat=float(params.smoothness_weight))
    positions /= np.float32(params.appearance_sigma_mm)
    appearance = np.concatenate([positions, image.reshape(1, -1).astype(np.float32) / np.float32(params.appearance_sigma_hu)])
    del positions
    crf.addPairwiseEnergy(appearance, compat=float(params.appearance_weight))
    del appearance
    marginals = np.asarray(crf.inference(int(params.iterations)))
    return marginals.argmax(0).astype(np.uint8).reshape(image.shape)
