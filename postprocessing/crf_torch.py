"""Mean-field inference of the dense CRF in PyTorch (on the GPU when there is one), on grids.

Same model, normalisation and update as pydensecrf (``crf_pydensecrf``):
symmetric kernel normalisation, Potts messages, ``Q = softmax(-U + sum_k w_k
K~_k Q)``. Only the Gaussian filtering differs: instead of a permutohedral
lattice, each kernel is applied by splat - blur - slice on a regular grid
whose cell is one kernel width (mm in space, HU in intensity; the bilateral
grid of Paris & Durand). Values are spread linearly to the neighbouring grid
nodes, the grid is blurred with a Gaussian of sqrt(2/3) cells (linear
spreading and reading add the missing 1/3 cell^2 of variance), and read back
linearly.

Three savings make it fast on a CPU too:

* active set - a voxel whose best unary energy beats every other by more than
  ``w_s + w_a + FROZEN_MARGIN`` cannot change its label (normalised messages
  differ by at most about one per unit of kernel weight); it keeps its initial
  marginals (error below e^-FROZEN_MARGIN) but still sends messages. Only the
  other voxels are updated and read, so iterations cost in proportion to the
  uncertain voxels.
* the smoothness kernel is separable: its normalisation is a product of 1-D
  vectors and the frozen voxels are splatted with three matrix products;
* the appearance kernel is wide in space (several voxels per cell), so the
  frozen voxels are splatted from a sub-lattice with at least
  ``SAMPLES_PER_SIGMA`` samples per kernel width, each weighted by the voxels
  it stands for (a quadrature of the same sum).
"""
import math
from typing import List, Sequence

import numpy as np
import torch

from nnunet_ppm.postprocessing.argmax import argmax_labels
from nnunet_ppm.postprocessing.crf_params import CRFParams

PAD = 2                        # empty grid cells on each side (room for the blur)
BLUR_STD_CELLS = math.sqrt(2.0 / 3.0)
BLUR_RADIUS = 2
FROZEN_MARGIN = 5.0
SAMPLES_PER_SIGMA = 4


def _node_count(coords_max: float) -> int:
    return int(math.floor(coords_max)) + PAD + 2


def _tent_matrix(coords: torch.Tensor, nodes: int) -> torch.Tensor:
    """(points, nodes) linear-interpolation weights of 1-D grid coordinates."""
    lower = coords.floor().long()
    frac = coords - lower
    matrix = torch.zeros((coords.numel(), nodes), device=coords.device)
    rows = torch.arange(coords.numel(), device=coords.device)
    matrix[rows, lower] = 1 - frac
    matrix[rows, lower + 1] = frac
    return matrix


def _blur_matrix(nodes: int, device: torch.device) -> torch.Tensor:
    offsets = torch.arange(nodes, device=device, dtype=torch.float32)
    distance = offsets[:, None] - offsets[None, :]
    matrix = torch.exp(-distance ** 2 / (2 * BLUR_STD_CELLS ** 2))
    return matrix * (distance.abs() <= BLUR_RADIUS)


def _contract(grid: torch.Tensor, matrix: torch.Tensor, axis: int) -> torch.Tensor:
    """Apply ``matrix`` (new, old) along ``axis`` of ``grid``."""
    return torch.tensordot(grid, matrix, dims=([axis], [1])).movedim(-1, axis)


class _Corners:
    """The 2^d grid corners of a set of points: flat node indices and linear weights, each (corners * points,)."""

    def __init__(self, coords: List[torch.Tensor], node_counts: Sequence[int]):
        device = coords[0].device
        strides = [math.prod(node_counts[axis + 1:]) for axis in range(len(node_counts))]
        bits = torch.tensor([[(corner >> axis) & 1 for axis in range(len(coords))]
                             for corner in range(2 ** len(coords))], device=device)        # (corners, axes)
        base = torch.zeros_like(coords[0], dtype=torch.long)
        weights = None
        for axis, (coord, stride) in enumerate(zip(coords, strides)):
            lower = coord.floor()
            frac = coord - lower
            base += lower.long() * stride
            pair = torch.stack([1 - frac, frac])                                        # (2, points)
            factor = pair[bits[:, axis]]                                                # (corners, points)
            weights = factor if weights is None else weights * factor
        offsets = bits @ torch.tensor(strides, device=device)
        self.count, self.corner_count = base.numel(), bits.shape[0]
        self.indices = (base[None] + offsets[:, None]).reshape(-1)
        self.weights = weights.reshape(-1)


class _Grid:
    """A coarse grid with one cell per kernel width on every feature axis; linear splat and slice."""

    def __init__(self, node_counts: Sequence[int], device: torch.device):
        self.node_counts = tuple(node_counts)
        self.blur_matrices = [_blur_matrix(n, device) for n in node_counts]

    def splat(self, values: torch.Tensor, corners: _Corners) -> torch.Tensor:
        """Spread (channels, points) values onto the grid: (channels, *node_counts)."""
        channels = values.shape[0]
        contributions = (corners.weights.view(corners.corner_count, corners.count) * values[:, None]).reshape(channels, -1)
        grid = torch.zeros((channels, math.prod(self.node_counts)), device=values.device)
        grid.index_add_(1, corners.indices, contributions)
        return grid.view(channels, *self.node_counts)

    def slice(self, grid: torch.Tensor, corners: _Corners) -> torch.Tensor:
        """Read the grid at the points: (channels, points)."""
        gathered = grid.reshape(grid.shape[0], -1).index_select(1, corners.indices) * corners.weights
        return gathered.view(grid.shape[0], corners.corner_count, corners.count).sum(1)

    def blur(self, grid: torch.Tensor) -> torch.Tensor:
        for axis, matrix in enumerate(self.blur_matrices):
            grid = _contract(grid, matrix, axis + 1)
        return grid


def _spatial_coords(shape: Sequence[int], spacing: Sequence[float], sigma_mm: float, device: torch.device):
    """Grid coordinates (one cell per sigma) of every index along each array axis."""
    return [torch.arange(n, device=device, dtype=torch.float32) * (s / sigma_mm) + PAD for n, s in zip(shape, spacing)]


def _unravel(flat_index: torch.Tensor, shape: Sequence[int]) -> List[torch.Tensor]:
    z = torch.div(flat_index, shape[1] * shape[2], rounding_mode="floor")
    rest = flat_index - z * (shape[1] * shape[2])
    y = torch.div(rest, shape[2], rounding_mode="floor")
    return [z, y, rest - y * shape[2]]


class _SmoothnessKernel:
    """Spatial Gaussian; separable, so its normalisation and the dense splat need only 1-D work and matmuls."""

    def __init__(self, shape, spacing, sigma_mm: float, device: torch.device):
        self.axis_coords = _spatial_coords(shape, spacing, sigma_mm, device)
        self.grid = _Grid([_node_count(c[-1].item()) for c in self.axis_coords], device)
        self.tents = [_tent_matrix(c, n) for c, n in zip(self.axis_coords, self.grid.node_counts)]
        axis_filters = [t @ b @ t.T for t, b in zip(self.tents, self.grid.blur_matrices)]
        self.axis_norms = [(f.sum(1)).clamp_min(1e-20).rsqrt() for f in axis_filters]
        self.axis_totals = [n * (f @ n) for n, f in zip(self.axis_norms, axis_filters)]

    def corners(self, position: List[torch.Tensor]) -> _Corners:
        return _Corners([c[p] for c, p in zip(self.axis_coords, position)], self.grid.node_counts)

    def norm(self, position: List[torch.Tensor]) -> torch.Tensor:
        return math.prod(n[p] for n, p in zip(self.axis_norms, position))[None]

    def normalised_total(self, position: List[torch.Tensor]) -> torch.Tensor:
        return math.prod(t[p] for t, p in zip(self.axis_totals, position))[None]

    def dense_norm(self) -> torch.Tensor:
        z, y, x = self.axis_norms
        return z[:, None, None] * y[None, :, None] * x[None, None, :]

    def dense_splat(self, values: torch.Tensor) -> torch.Tensor:
        """Splat (channels, Z, Y, X) values of every voxel with three matrix products."""
        for axis, tent in enumerate(self.tents):
            values = _contract(values, tent.T, axis + 1)
        return values


class _AppearanceKernel:
    """Gaussian in space and intensity, on a 4-D grid (slice, intensity, y, x)."""

    def __init__(self, shape, spacing, sigma_mm: float, intensity: torch.Tensor, sigma_hu: float,
                 device: torch.device):
        self.axis_coords = _spatial_coords(shape, spacing, sigma_mm, device)
        self.intensity_coords = (intensity - intensity.min()) / sigma_hu + PAD
        spatial_nodes = [_node_count(c[-1].item()) for c in self.axis_coords]
        self.grid = _Grid([spatial_nodes[0], _node_count(self.intensity_coords.max().item()), *spatial_nodes[1:]], device)
        self.sample_steps = [max(1, int(sigma_mm / s) // SAMPLES_PER_SIGMA) for s in spacing]

    def corners(self, flat_index: torch.Tensor, position: List[torch.Tensor]) -> _Corners:
        z, y, x = (c[p] for c, p in zip(self.axis_coords, position))
        return _Corners([z, self.intensity_coords[flat_index], y, x], self.grid.node_counts)


def mean_field_torch(probabilities: np.ndarray, image: np.ndarray, spacing: Sequence[float],
                     params: CRFParams) -> np.ndarray:
    """Dense CRF labels of one block with the PyTorch grid backend (GPU when available).

    Args, returns: as ``crf_pydensecrf.mean_field_pydensecrf``.
    """
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    shape = tuple(image.shape)
    labels = argmax_labels(probabilities)
    n_classes = probabilities.shape[0]
    clipped = torch.from_numpy(probabilities).to(device).reshape(n_classes, -1).clamp(params.unary_floor, 1.0)
    frozen_gap = params.smoothness_weight + params.appearance_weight + FROZEN_MARGIN
    close_to_best = clipped > clipped.amax(0) * math.exp(-frozen_gap)
    frozen = close_to_best.sum(0) == 1
    active = torch.nonzero(~frozen).flatten()
    del close_to_best
    if active.numel() == 0:
        return labels

    initial = clipped / clipped.sum(0)                     # softmax(-U): pydensecrf's starting marginals
    unary = -clipped[:, active].log()
    active_position = _unravel(active, shape)
    frozen_foreground = initial[1:] * frozen
    del clipped

    smoothness = _SmoothnessKernel(shape, spacing, params.smoothness_sigma_mm, device)
    frozen_foreground_norm = frozen_foreground.view(-1, *shape) * smoothness.dense_norm()
    smoothness_terms = (params.smoothness_weight, smoothness.grid, smoothness.corners(active_position),
                        smoothness.norm(active_position), smoothness.normalised_total(active_position),
                        smoothness.dense_splat(frozen_foreground_norm))
    del frozen_foreground_norm

    intensity = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device).reshape(-1)
    appearance = _AppearanceKernel(shape, spacing, params.appearance_sigma_mm, intensity,
                                   params.appearance_sigma_hu, device)
    frozen_mask = frozen.view(shape)[tuple(slice(None, None, step) for step in appearance.sample_steps)]
    lattice = torch.arange(initial.shape[1], device=device).view(shape)
    lattice = lattice[tuple(slice(None, None, step) for step in appearance.sample_steps)][frozen_mask]
    lattice_weight = float(math.prod(appearance.sample_steps))
    lattice_corners = appearance.corners(lattice, _unravel(lattice, shape))
    active_corners = appearance.corners(active, active_position)
    grid = appearance.grid
    density = (grid.splat(torch.full((1, lattice.numel()), lattice_weight, device=device), lattice_corners)
               + grid.splat(torch.ones((1, active.numel()), device=device), active_corners))
    density = grid.blur(density)
    lattice_norm = grid.slice(density, lattice_corners).clamp_min(1e-20).rsqrt()
    active_norm = grid.slice(density, active_corners).clamp_min(1e-20).rsqrt()
    frozen_sums = grid.splat(torch.cat([lattice_norm, lattice_norm * frozen_foreground[:, lattice]]) * lattice_weight,
                             lattice_corners)
    total = grid.slice(grid.blur(frozen_sums[:1] + grid.splat(active_norm, active_corners)), active_corners)
    appearance_terms = (params.appearance_weight, grid, active_corners, active_norm, active_norm * total,
                        frozen_sums[1:])
    del frozen_foreground, lattice_corners, density, intensity

    marginals = initial[:, active]
    del initial
    for _ in range(int(params.iterations)):
        logits = -unary
        for weight, kernel_grid, corners, norm, normalised_total, frozen_grid in (smoothness_terms, appearance_terms):
            sums = frozen_grid + kernel_grid.splat(norm * marginals[1:], corners)
            messages = norm * kernel_grid.slice(kernel_grid.blur(sums), corners)
            logits[1:] += weight * messages
            logits[0] += weight * (normalised_total[0] - messages.sum(0))
        marginals = torch.softmax(logits, 0)
    labels.reshape(-1)[active.cpu().numpy()] = marginals.argmax(0).to(torch.uint8).cpu().numpy()
    return labels
