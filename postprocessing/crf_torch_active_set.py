"""Dense-CRF mean field restricted to the voxels whose label can still change (the active set), in PyTorch.

``crf_torch`` runs this when few voxels are uncertain (confident, network-like
probabilities); its own pass over every voxel costs the same on every input.
Same model, normalisation and update as pydensecrf; the kernels are applied on
``crf_grid`` grids of one cell per kernel width:

* active set - a voxel whose best unary energy beats every other by more than
  ``w_s + w_a + FROZEN_MARGIN`` cannot change its label (normalised messages
  differ by at most about one per unit of kernel weight); it keeps its initial
  marginals (error below e^-FROZEN_MARGIN) but still sends messages. Only the
  other voxels are updated and read, so iterations cost in proportion to the
  uncertain voxels.
* separable spreading - linear spreading is a product of 1-D spreads, and
  along a spatial axis a 1-D spread is a (voxels x nodes) matrix. The leading
  spatial axes are therefore spread and read by matrix products, and only the
  trailing axes point by point, at their 2^s grid corners: the smoothness
  kernel takes z and y by matrix products and x by points (2 corners per
  voxel), the appearance kernel z by a matrix product and (y, intensity, x) by
  points (8 corners per voxel instead of 16 on its 4-D grid). The frozen
  voxels of the smoothness kernel go through matrix products alone, and its
  normalisation is a product of 1-D vectors.
* the appearance kernel is wide in space (several voxels per cell), so the
  frozen voxels are splatted from a sub-lattice with at least
  ``SAMPLES_PER_SIGMA`` samples per kernel width, each weighted by the voxels
  it stands for (a quadrature of the same sum).
"""
import math
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch

from nnunet_ppm.postprocessing.argmax import argmax_labels
from nnunet_ppm.postprocessing.crf_grid import PAD, along, blur_matrix, node_count, tent_matrix
from nnunet_ppm.postprocessing.crf_params import CRFParams

FROZEN_MARGIN = 5.0
SAMPLES_PER_SIGMA = 4
CHUNK_POINTS = 2 ** 17


def _chunks(count: int) -> Iterator[slice]:
    return (slice(start, min(start + CHUNK_POINTS, count)) for start in range(0, count, CHUNK_POINTS))


def _class_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum over the (few) classes of a (classes, points) tensor, as element-wise additions of rows."""
    total = values[0].clone()
    for row in values[1:]:
        total += row
    return total


def _softmax_over_classes(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over dimension 0 of (classes, points), in place, by element-wise passes over rows."""
    highest = logits[0].clone()
    for row in logits[1:]:
        torch.maximum(highest, row, out=highest)
    logits.sub_(highest).exp_()
    return logits.div_(_class_sum(logits))


class _Points:
    """Points spread onto, or read from, an intermediate array at the 2^s corners of their scatter axes.

    ``base`` is each point's flat index in the intermediate array at its lower corner; a corner
    adds a fixed offset (a shifted view of the array, no index arithmetic) and has one linear
    weight per point. Points are processed in chunks of ``CHUNK_POINTS``, so that temporaries
    stay small (in cache, and reused rather than freshly mapped by the allocator).
    """

    def __init__(self, base: torch.Tensor, fractions: Sequence[torch.Tensor], strides: Sequence[int]):
        self.base = base
        self.offsets, weights = [], []
        for corner in range(2 ** len(strides)):
            bits = [(corner >> axis) & 1 for axis in range(len(strides))]
            self.offsets.append(sum(bit * stride for bit, stride in zip(bits, strides)))
            weight = None
            for bit, fraction in zip(bits, fractions):
                factor = fraction if bit else 1 - fraction
                weight = factor if weight is None else weight * factor
            weights.append(weight)
        self.weights = torch.stack(weights)                                          # (corners, points)

    def chunks(self) -> Iterator[slice]:
        return _chunks(self.base.numel())

    def scatter_chunk(self, array: torch.Tensor, values: torch.Tensor, chunk: slice) -> None:
        """Add (channels, chunk) values of the points in ``chunk`` to their corners in ``array`` (channels, size)."""
        base, weights = self.base[chunk], self.weights[:, chunk]
        for offset, weight in zip(self.offsets, weights):
            for channel, channel_values in enumerate(values):       # 1-D views: no copy of the array
                array[channel, offset:].index_add_(0, base, channel_values * weight)

    def gather_chunk(self, array: torch.Tensor, chunk: slice) -> torch.Tensor:
        """(channels, chunk): the linear interpolation of ``array`` (channels, size) at the points in ``chunk``."""
        base, weights = self.base[chunk], self.weights[:, chunk]
        result = torch.zeros((array.shape[0], base.numel()), device=array.device)
        for offset, weight in zip(self.offsets, weights):
            for channel, channel_result in enumerate(result):
                channel_result.addcmul_(array[channel, offset:].index_select(0, base), weight)
        return result

    def scatter(self, values: torch.Tensor, size: int, scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(channels, points) values, times ``scale`` (1, points) if given -> (channels, size), spread to corners."""
        array = torch.zeros((values.shape[0], size), device=values.device)
        for chunk in self.chunks():
            self.scatter_chunk(array, values[:, chunk] if scale is None else values[:, chunk] * scale[:, chunk], chunk)
        return array

    def gather(self, array: torch.Tensor) -> torch.Tensor:
        """(channels, size) -> (channels, points): the linear interpolation at each point."""
        result = torch.empty((array.shape[0], self.base.numel()), device=array.device)
        for chunk in self.chunks():
            result[:, chunk] = self.gather_chunk(array, chunk)
        return result


class _SeparableGrid:
    """A grid with one cell per kernel width on every feature axis, reached through an intermediate array.

    The grid's axes are the leading spatial axes (spread by their tent matrices) followed by the
    scatter axes (spread point by point). The intermediate array has the voxels of the leading axes
    and the nodes of the scatter axes: points are scattered into it, matrix products take it to the
    grid (splat), and back (slice).
    """

    def __init__(self, leading_tents: Sequence[torch.Tensor], scatter_nodes: Sequence[int], device: torch.device):
        self.leading_tents = list(leading_tents)
        self.intermediate_shape = [t.shape[0] for t in self.leading_tents] + list(scatter_nodes)
        self.blur_matrices = [blur_matrix(n, device) for n in [t.shape[1] for t in self.leading_tents] + list(scatter_nodes)]
        self.size = math.prod(self.intermediate_shape)
        self.strides = [math.prod(self.intermediate_shape[axis + 1:]) for axis in range(len(self.intermediate_shape))]

    def points(self, leading_index: Sequence[torch.Tensor], scatter_coords: Sequence[torch.Tensor]) -> _Points:
        """Points at the given voxel indices along the leading axes and grid coordinates along the scatter axes."""
        base = torch.zeros_like(leading_index[0])
        for index, stride in zip(leading_index, self.strides):
            base += index * stride
        fractions = []
        for coords, stride in zip(scatter_coords, self.strides[len(self.leading_tents):]):
            lower = coords.floor()
            base += lower.long() * stride
            fractions.append(coords - lower)
        return _Points(base, fractions, self.strides[len(self.leading_tents):])

    def to_grid(self, intermediate: torch.Tensor) -> torch.Tensor:
        """(channels, *intermediate_shape) -> (channels, *grid shape)."""
        for axis, tent in enumerate(self.leading_tents):
            intermediate = along(intermediate, tent.T, axis + 1)
        return intermediate

    def to_intermediate(self, grid: torch.Tensor) -> torch.Tensor:
        """(channels, *grid shape) -> (channels, size): the grid read at every voxel of the leading axes."""
        for axis, tent in enumerate(self.leading_tents):
            grid = along(grid, tent, axis + 1)
        return grid.reshape(grid.shape[0], -1)

    def splat(self, values: torch.Tensor, points: _Points) -> torch.Tensor:
        return self.to_grid(points.scatter(values, self.size).view(values.shape[0], *self.intermediate_shape))

    def slice(self, grid: torch.Tensor, points: _Points) -> torch.Tensor:
        return points.gather(self.to_intermediate(grid))

    def blur(self, grid: torch.Tensor) -> torch.Tensor:
        for axis, matrix in enumerate(self.blur_matrices):
            grid = along(grid, matrix, axis + 1)
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
    """Spatial Gaussian on a (z, y, x) grid: z and y by matrix products, x by points; separable normalisation."""

    def __init__(self, shape, spacing, sigma_mm: float, device: torch.device):
        self.axis_coords = _spatial_coords(shape, spacing, sigma_mm, device)
        node_counts = [node_count(c[-1].item()) for c in self.axis_coords]
        self.tents = [tent_matrix(c, n) for c, n in zip(self.axis_coords, node_counts)]
        self.grid = _SeparableGrid(self.tents[:2], node_counts[2:], device)
        axis_filters = [t @ b @ t.T for t, b in zip(self.tents, [blur_matrix(n, device) for n in node_counts])]
        self.axis_norms = [(f.sum(1)).clamp_min(1e-20).rsqrt() for f in axis_filters]
        self.axis_totals = [n * (f @ n) for n, f in zip(self.axis_norms, axis_filters)]

    def points(self, position: List[torch.Tensor]) -> _Points:
        return self.grid.points(position[:2], [self.axis_coords[2][position[2]]])

    def norm(self, position: List[torch.Tensor]) -> torch.Tensor:
        return math.prod(n[p] for n, p in zip(self.axis_norms, position))[None]

    def normalised_total(self, position: List[torch.Tensor]) -> torch.Tensor:
        return math.prod(t[p] for t, p in zip(self.axis_totals, position))[None]

    def dense_norm(self) -> torch.Tensor:
        z, y, x = self.axis_norms
        return z[:, None, None] * y[None, :, None] * x[None, None, :]

    def dense_splat(self, values: torch.Tensor) -> torch.Tensor:
        """Splat (channels, Z, Y, X) values of every voxel with three matrix products."""
        return self.grid.to_grid(along(values, self.tents[2].T, 3))


class _AppearanceKernel:
    """Gaussian in space and intensity on a (z, y, intensity, x) grid: z by a matrix product, the rest by points."""

    def __init__(self, shape, spacing, sigma_mm: float, intensity: torch.Tensor, sigma_hu: float,
                 device: torch.device):
        self.axis_coords = _spatial_coords(shape, spacing, sigma_mm, device)
        self.intensity_coords = (intensity - intensity.min()) / sigma_hu + PAD
        spatial_nodes = [node_count(c[-1].item()) for c in self.axis_coords]
        self.grid = _SeparableGrid([tent_matrix(self.axis_coords[0], spatial_nodes[0])],
                                   [spatial_nodes[1], node_count(self.intensity_coords.max().item()), spatial_nodes[2]],
                                   device)
        self.sample_steps = [max(1, int(sigma_mm / s) // SAMPLES_PER_SIGMA) for s in spacing]

    def points(self, flat_index: torch.Tensor, position: List[torch.Tensor]) -> _Points:
        z, y, x = position
        return self.grid.points([z], [self.axis_coords[1][y], self.intensity_coords[flat_index], self.axis_coords[2][x]])


@dataclass
class _KernelTerm:
    """One pairwise kernel's part of the update, for the active voxels (``points``).

    ``norm`` and ``normalised_total`` (1, active) are the symmetric normalisation of each active
    voxel and its normalised kernel sum over all voxels; ``frozen_grid`` holds the frozen voxels'
    normalised foreground marginals, splatted once.
    """
    weight: float
    grid: _SeparableGrid
    points: _Points
    norm: torch.Tensor
    normalised_total: torch.Tensor
    frozen_grid: torch.Tensor

    def received_sums(self, marginals: torch.Tensor) -> torch.Tensor:
        """Blurred grid of all voxels' normalised foreground marginals, read back along the leading axes."""
        intermediate = self.points.scatter(marginals[1:], self.grid.size, scale=self.norm)
        sums = self.frozen_grid + self.grid.to_grid(intermediate.view(-1, *self.grid.intermediate_shape))
        return self.grid.to_intermediate(self.grid.blur(sums))


def frozen_voxels(probabilities: torch.Tensor, params: CRFParams) -> torch.Tensor:
    """(voxels,) bool: the voxels of (classes, voxels) probabilities whose label no message can change."""
    floor = params.unary_floor
    frozen_gap = params.smoothness_weight + params.appearance_weight + FROZEN_MARGIN
    threshold = probabilities.amax(0).clamp_(floor, 1.0).mul_(math.exp(-frozen_gap))
    close_to_best = (threshold < floor).to(torch.uint8)       # a probability below the floor counts as the floor
    for row in probabilities:
        close_to_best += row > threshold
    return close_to_best == 1


def mean_field_active_set(probabilities: np.ndarray, image: np.ndarray, spacing: Sequence[float],
                          params: CRFParams, device: torch.device) -> np.ndarray:
    """Dense CRF labels of one block, updating only the voxels that are not frozen.

    Args, returns: as ``crf_pydensecrf.mean_field_pydensecrf``; ``device``: where the tensors live.
    """
    shape = tuple(image.shape)
    labels = argmax_labels(probabilities)
    n_classes = probabilities.shape[0]
    floor = params.unary_floor
    probabilities = torch.from_numpy(np.ascontiguousarray(probabilities)).to(device).reshape(n_classes, -1)
    frozen = frozen_voxels(probabilities, params)
    active = torch.nonzero(~frozen).flatten()
    if active.numel() == 0:
        return labels

    frozen_foreground = probabilities[1:].clamp(floor, 1.0)      # softmax(-U): pydensecrf's starting marginals
    frozen_foreground /= probabilities[0].clamp(floor, 1.0) + _class_sum(frozen_foreground)
    frozen_foreground *= frozen
    active_clipped = probabilities[:, active].clamp_(floor, 1.0)
    unary = -active_clipped.log()
    marginals = active_clipped.div_(_class_sum(active_clipped))
    active_position = _unravel(active, shape)

    smoothness = _SmoothnessKernel(shape, spacing, params.smoothness_sigma_mm, device)
    smoothness_term = _KernelTerm(params.smoothness_weight, smoothness.grid, smoothness.points(active_position),
                                  smoothness.norm(active_position), smoothness.normalised_total(active_position),
                                  smoothness.dense_splat(frozen_foreground.view(-1, *shape) * smoothness.dense_norm()))

    intensity = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device).reshape(-1)
    appearance = _AppearanceKernel(shape, spacing, params.appearance_sigma_mm, intensity,
                                   params.appearance_sigma_hu, device)
    frozen_mask = frozen.view(shape)[tuple(slice(None, None, step) for step in appearance.sample_steps)]
    lattice = torch.arange(frozen.numel(), device=device).view(shape)
    lattice = lattice[tuple(slice(None, None, step) for step in appearance.sample_steps)][frozen_mask]
    lattice_weight = float(math.prod(appearance.sample_steps))
    lattice_points = appearance.points(lattice, _unravel(lattice, shape))
    active_points = appearance.points(active, active_position)
    grid = appearance.grid
    density = grid.blur(grid.splat(torch.full((1, lattice.numel()), lattice_weight, device=device), lattice_points)
                        + grid.splat(torch.ones((1, active.numel()), device=device), active_points))
    lattice_norm = grid.slice(density, lattice_points).clamp_min(1e-20).rsqrt()
    active_norm = grid.slice(density, active_points).clamp_min(1e-20).rsqrt()
    frozen_sums = grid.splat(torch.cat([lattice_norm, lattice_norm * frozen_foreground[:, lattice]]) * lattice_weight,
                             lattice_points)
    total = grid.slice(grid.blur(frozen_sums[:1] + grid.splat(active_norm, active_points)), active_points)
    appearance_term = _KernelTerm(params.appearance_weight, grid, active_points, active_norm, active_norm * total,
                                  frozen_sums[1:])
    del frozen_foreground, lattice_points, density, intensity

    terms = (smoothness_term, appearance_term)
    for _ in range(int(params.iterations)):
        received = [term.received_sums(marginals) for term in terms]
        for chunk in _chunks(active.numel()):
            logits = -unary[:, chunk]
            for term, sums in zip(terms, received):
                messages = term.points.gather_chunk(sums, chunk).mul_(term.norm[:, chunk])
                logits[1:] += term.weight * messages
                logits[0] += term.weight * (term.normalised_total[0, chunk] - _class_sum(messages))
            marginals[:, chunk] = _softmax_over_classes(logits)
    labels.reshape(-1)[active.cpu().numpy()] = argmax_labels(marginals.cpu().numpy())
    return labels
