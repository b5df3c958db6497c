"""Mean-field inference of the dense CRF in PyTorch (on the GPU when there is one), on grids.

Same model, normalisation and update as pydensecrf (``crf_pydensecrf``):
symmetric kernel normalisation, Potts messages, ``Q = softmax(-U + sum_k w_k
K~_k Q)``, every voxel updated in every iteration (parallel updates), the unary
at full resolution. Only the Gaussian filtering differs: instead of a
permutohedral lattice, each kernel is applied by splat - blur - slice on a
regular grid whose cell is one kernel width (mm in space, HU in intensity; the
bilateral grid of Paris & Durand). Values are spread linearly to the
neighbouring grid nodes, the grid is blurred with a Gaussian of sqrt(2/3)
cells (linear spreading and reading add the missing 1/3 cell^2 of variance),
and read back linearly (``crf_grid``). Blocks where few voxels can change
their label (confident probabilities) go to ``crf_torch_active_set``, which
updates only those; on the others (uncertain probabilities, the worst case)
its cost approaches 3-4x this module's. Here the kernels, >= 3 mm wide and so
several voxels, are computed on grids at (a fraction of) their width, and only
the per-voxel update runs at full resolution, at the same cost on every input:

* one pass over the voxels per iteration, plane by plane along z: each voxel
  reads its messages from the blurred grids, gets its new marginals, and
  splats them into the next iteration's grids. Along z the grids' nodes are
  reached plane by plane (two weighted adds or reads of a whole plane), along
  y and x by matrix products on the grids, which are small; no
  full-resolution array is allocated besides the unary terms and the
  appearance bins and weights (page faults on fresh memory cost as much as
  the work; the bins are kept as int32, a chunk's int64 bins made per pass).
* smoothness kernel (space only): a voxel plane is added to (read from) its
  two z nodes as a whole, so it needs no per-voxel indexing; the symmetric
  normalisation is a product of 1-D vectors, folded into the tents.
* appearance kernel (space and intensity): a voxel's intensity places it
  between two intensity nodes of its own, which whole planes cannot share.
  Each voxel is therefore binned once: into a cell of a fine spatial lattice
  (``CELL_FRACTION`` of the spatial width per side, 2-3 voxels here; the
  nearest cell; ``UNCERTAIN_CELL_FRACTION`` where most voxels can change
  their label, below) and linearly between its two intensity nodes. Splat is one
  scatter-add per chunk (all labels, both nodes) into its planes' (y cells,
  x cells, intensity nodes) histograms, slice one gather; the fine cells
  reach the kernel-width grid like voxels do above. Binning moves a voxel by
  at most half a fine cell; the blur is narrowed by the variance this adds
  (cell^2 / 12 on each side), so that the kernel keeps its width. Finer
  cells agree better with pydensecrf and cost more (larger histograms): on
  the benchmark's "network" ROI, 1/3 of the width got 94 % and 1/5 95.5 % of
  the labels pydensecrf changes (benchmarks/RESULTS.md, issue 17 section).
  Where more than ``UNCERTAIN_SHARE`` of the voxels can change their label
  (uncertain probabilities everywhere: the worst case for time), the labels
  follow the smoothing more than fine appearance detail: cells of a third of
  the width agreed on >= 99.0 % of the labels pydensecrf changes there (the
  uncertain and crafted ROIs, 0-30 HU noise) at 60-75 % of the fifth's time
  (CPU seconds, one thread); a choice of ours, by that measurement.
* the update works on logits minus the background's, so only the
  foreground labels are carried; the background's messages are the
  kernels' totals minus theirs. The smoothness totals are a product of 1-D
  vectors; the appearance totals ride as a channel of ones in the first
  splat and read, so they cost no pass of their own. The softmax is
  shifted by each voxel's highest logit only in chunks where an exp could
  overflow (``EXP_SAFE``). The kernel weights are folded into the blurs.
* one CPU thread (``CPU_THREADS``): the work is gathers, scatters, element-wise
  passes and small matrix products, which a second thread hardly speeds up
  and, on a machine that other processes share, slows down several times
  (each parallel region waits for a descheduled thread). Cases run in
  parallel processes instead (``nnunet_ppm predict -nps``). With one thread
  the scatter-adds and sums run in a fixed order: the same input gives the
  same labels, whatever torch's thread setting. On the CPU the pass goes over
  chunks of about ``CHUNK_VOXELS`` voxels (whole planes of fine cells), so
  that temporaries stay in cache; on the GPU over all voxels at once.
"""
import math
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch

from nnunet_ppm.postprocessing.argmax import argmax_labels
from nnunet_ppm.postprocessing.crf_grid import BLUR_STD_CELLS, PAD, along, blur_matrix, node_count, tent_matrix
from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_ppm.postprocessing.crf_torch_active_set import frozen_voxels, mean_field_active_set

ACTIVE_SET_FRACTION = 0.1      # at most this fraction of changeable voxels: crf_torch_active_set instead
EXP_SAFE = 80.0                # exp of up to this (times the labels) stays finite in float32
CELL_FRACTION = 0.2            # appearance kernel: fine cell side over the spatial width
UNCERTAIN_CELL_FRACTION = 1 / 3  # ... where more than UNCERTAIN_SHARE of the voxels can change their label
UNCERTAIN_SHARE = 0.5
CPU_THREADS = 1
CHUNK_VOXELS = 2 ** 16


def _foreground_marginals(differences: torch.Tensor, shift: bool) -> torch.Tensor:
    """Marginals of the foreground labels from their logits minus the background's, (labels - 1, points), in place.

    The softmax over (0, differences). ``shift``: subtract each point's highest logit first, which is
    needed only where an exp could overflow (differences beyond ``EXP_SAFE``).
    """
    background = 1.0
    if shift:
        highest = differences[0].clamp_min(0)
        for row in differences[1:]:
            torch.maximum(highest, row, out=highest)
        differences.sub_(highest)
        background = highest.neg_().exp_()
    differences.exp_()
    denominator = differences[0] + background
    for row in differences[1:]:
        denominator += row
    return differences.div_(denominator)


def _labels(differences: torch.Tensor) -> torch.Tensor:
    """uint8 argmax over (0, differences) of (labels - 1, points) logit differences; ties go to the lower label."""
    labels = differences[0].gt(0).to(torch.uint8)
    highest = differences[0].clamp_min(0)
    for label, row in enumerate(differences[1:], start=2):
        labels.masked_fill_(row > highest, label)
        torch.maximum(highest, row, out=highest)
    return labels


class _PlaneTent:
    """Linear spreading between the planes of the first spatial axis and the grid's nodes along it.

    Each plane (a voxel plane, or a plane of fine cells) has its lower node and two weights; the
    mean field adds each plane's values to its two nodes (splat) and reads them back (slice)
    while it passes over the planes, so that no full-resolution array goes through a matrix product.
    """

    def __init__(self, tent: torch.Tensor):
        self.nodes = tent.shape[1]
        lower = tent.ne(0).int().argmax(1).tolist()          # the first node with a weight
        self.pairs = [(node, float(tent[plane, node]), float(tent[plane, node + 1]))
                      for plane, node in enumerate(lower)]

    def add(self, grid: torch.Tensor, plane: int, values: torch.Tensor) -> None:
        """Add (channels, *plane shape) ``values`` of ``plane`` to its nodes of ``grid`` (channels, nodes, ...)."""
        node, lower_weight, upper_weight = self.pairs[plane]
        grid[:, node].add_(values, alpha=lower_weight)
        grid[:, node + 1].add_(values, alpha=upper_weight)

    def add_read(self, grid: torch.Tensor, plane: int, out: torch.Tensor) -> None:
        """Add ``grid`` (channels, nodes, ...) interpolated at ``plane`` to ``out`` (channels, *plane shape)."""
        node, lower_weight, upper_weight = self.pairs[plane]
        out.add_(grid[:, node], alpha=lower_weight).add_(grid[:, node + 1], alpha=upper_weight)

    def interpolate(self, grid: torch.Tensor, plane: int, out: torch.Tensor) -> None:
        """``grid`` (channels, nodes, ...) at ``plane`` into ``out``, for a tent whose two weights add up to one."""
        node, _, upper_weight = self.pairs[plane]
        torch.lerp(grid[:, node], grid[:, node + 1], upper_weight, out=out)


def _blur_grid(grid: torch.Tensor, tents: Sequence[torch.Tensor], blurs: Sequence[torch.Tensor],
               out: torch.Tensor, weight: float) -> torch.Tensor:
    """Splat along the axes after the first (``tents``, from dimension 2), blur every axis, slice back into ``out``.

    ``weight`` scales the result (folded into the first axis's blur).
    """
    for dim, tent in enumerate(tents, start=2):
        grid = along(grid, tent.T, dim)
    for dim, blur in enumerate(blurs, start=1):
        grid = along(grid, blur * weight if dim == 1 else blur, dim)
    for dim, tent in enumerate(tents, start=2):
        grid = along(grid, tent, dim, out=out if dim == len(tents) + 1 else None)
    return out


class _SmoothnessFilter:
    """Normalised spatial Gaussian ``n_i sum_j K(i, j) n_j v_j`` of values given plane by plane along z.

    The grid has the nodes along z and the voxels along y and x (reached by matrix products); the
    normalisation ``n`` is a product of 1-D vectors, folded into the tents.
    """

    def __init__(self, shape: Sequence[int], spacing: Sequence[float], sigma_mm: float, device: torch.device):
        coords = [torch.arange(n, device=device, dtype=torch.float32) * (s / sigma_mm) + PAD
                  for n, s in zip(shape, spacing)]
        tents = [tent_matrix(c, node_count(c[-1].item())) for c in coords]
        self.blurs = [blur_matrix(t.shape[1], device) for t in tents]
        axis_filters = [t @ b @ t.T for t, b in zip(tents, self.blurs)]
        axis_norms = [f.sum(1).clamp_min(1e-20).rsqrt() for f in axis_filters]
        self.axis_totals = [n * (f @ n) for n, f in zip(axis_norms, axis_filters)]
        tents = [n[:, None] * t for n, t in zip(axis_norms, tents)]             # normalisation folded in
        self.z = _PlaneTent(tents[0])
        self.in_plane_tents = tents[1:]
        self.grid_shape = (self.z.nodes, *shape[1:])

    def normalised_total(self, planes: range) -> torch.Tensor:
        """``n_i sum_j K(i, j) n_j`` of the voxels of ``planes``, flat."""
        z, y, x = self.axis_totals
        return (z[planes.start:planes.stop, None, None] * y[None, :, None] * x[None, None, :]).reshape(-1)

    def splat(self, grid: torch.Tensor, planes: range, values: torch.Tensor) -> None:
        """Add (channels, voxels of ``planes``) values to ``grid`` (channels, *grid_shape)."""
        values = values.view(values.shape[0], len(planes), *self.grid_shape[1:])
        for index, plane in enumerate(planes):
            self.z.add(grid, plane, values[:, index])

    def blur(self, grid: torch.Tensor, out: torch.Tensor, weight: float) -> torch.Tensor:
        """``grid`` blurred (splatted values -> weighted kernel sums at the grid's positions) into ``out``."""
        return _blur_grid(grid, self.in_plane_tents, self.blurs, out, weight)

    def add_read(self, grid: torch.Tensor, planes: range, out: torch.Tensor) -> None:
        """Add blurred ``grid`` read at the voxels of ``planes`` to ``out`` (channels, voxels of ``planes``)."""
        view = out.view(out.shape[0], len(planes), *self.grid_shape[1:])
        for index, plane in enumerate(planes):
            self.z.add_read(grid, plane, view[:, index])


def _cell_tent(length: int, cell: int, spacing: float, sigma_mm: float, device: torch.device
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(voxel -> cell index, (cells, nodes) tent matrix of the cells' centres) along one axis of ``length`` voxels."""
    starts = torch.arange(0, length, cell, device=device, dtype=torch.float32)
    centres = (starts + (starts + cell).clamp_max(length) - 1) / 2
    coords = centres * (spacing / sigma_mm) + PAD
    voxel_cell = torch.div(torch.arange(length, device=device), cell, rounding_mode="floor")
    return voxel_cell, tent_matrix(coords, node_count(coords[-1].item()))


class _AppearanceFilter:
    """Normalised Gaussian in space and intensity, through fine spatial cells x intensity nodes.

    Voxels are binned into the (y cells, x cells, intensity nodes) histogram of their plane of fine
    cells along z; the grid has the nodes along z and the fine cells along y and x. ``lower`` holds
    each voxel's bin at its lower intensity node, counted from the first cell plane of its chunk
    (int32: a quarter of the memory of both nodes' int64 bins, whose fresh pages cost time);
    ``bins`` makes a chunk's (lower nodes, upper nodes) int64 bins, shared by a pass's read and
    splat. ``weights`` holds, per chunk, each voxel's normalisation times its linear weight at its
    lower node, then (the same voxels again) at its upper node. A splat or a read of all channels
    is then one scatter-add or one gather per chunk.
    """

    def __init__(self, shape: Sequence[int], spacing: Sequence[float], sigma_mm: float, intensity: torch.Tensor,
                 sigma_hu: float, chunk_voxels: int, device: torch.device, cell_fraction: float = CELL_FRACTION):
        cells = [max(1, round(cell_fraction * sigma_mm / s)) for s in spacing]
        voxel_cells, tents = zip(*[_cell_tent(n, c, s, sigma_mm, device) for n, c, s in zip(shape, cells, spacing)])
        binning_variance = [(c * s / sigma_mm) ** 2 / 6 for c, s in zip(cells, spacing)]   # grid cells^2
        self.blurs = [blur_matrix(t.shape[1], device, math.sqrt(BLUR_STD_CELLS ** 2 - v))
                      for t, v in zip(tents, binning_variance)]
        self.z = _PlaneTent(tents[0])
        self.in_plane_tents = tents[1:]
        plane_voxels, cell_planes = math.prod(shape[1:]), tents[0].shape[0]
        per_chunk = max(1, chunk_voxels // (cells[0] * plane_voxels))      # planes of fine cells per chunk
        self.chunks = []                                    # (fine-cell planes, voxel planes, flat voxel slice)
        for start in range(0, cell_planes, per_chunk):
            planes = range(start * cells[0], min((start + per_chunk) * cells[0], shape[0]))
            self.chunks.append((range(start, min(start + per_chunk, cell_planes)), planes,
                                slice(planes.start * plane_voxels, planes.stop * plane_voxels)))

        low, high = intensity.aminmax()
        intensity_nodes = int(((high - low) / sigma_hu).floor().item()) + 2
        self.blurs.append(blur_matrix(intensity_nodes, device))
        self.plane_shape = (tents[1].shape[0], tents[2].shape[0], intensity_nodes)
        self.grid_shape = (self.z.nodes, *self.plane_shape)
        plane_bins = math.prod(self.plane_shape)
        plane_offsets = (voxel_cells[0] % per_chunk) * plane_bins               # bins before a voxel's cell
        row_offsets = ((voxel_cells[1] * (self.plane_shape[1] * intensity_nodes))[:, None]
                       + (voxel_cells[2] * intensity_nodes)[None, :])
        self.lower = torch.empty(intensity.numel(), dtype=torch.int32, device=device)
        self.weights = torch.empty(2 * intensity.numel(), device=device)
        density = torch.zeros((1, *self.grid_shape), device=device)
        for cells, planes, chunk in self.chunks:
            weights = self._weights(chunk)
            position = torch.sub(intensity[chunk], low, out=weights[1]).div_(sigma_hu)
            lower = position.floor()
            position -= lower                                   # fraction above the lower node
            torch.sub(1, position, out=weights[0])
            torch.add(row_offsets, plane_offsets[planes.start:planes.stop, None, None],
                      out=self.lower[chunk].view(len(planes), *row_offsets.shape))
            self.lower[chunk] += lower.to(torch.int32)
            self.splat(density, cells, chunk, self.bins(chunk), ones=True)   # linear weights only: the density
        density = self.blur(density)
        for cells, _, chunk in self.chunks:
            self._weights(chunk).mul_(self.read(density, cells, chunk, self.bins(chunk)).clamp_min_(1e-20).rsqrt_())

    def _weights(self, chunk: slice) -> torch.Tensor:
        """(2, voxels of ``chunk``) view of ``weights``: lower node, upper node."""
        return self.weights[2 * chunk.start:2 * chunk.stop].view(2, chunk.stop - chunk.start)

    def bins(self, chunk: slice) -> torch.Tensor:
        """(2 * voxels of ``chunk``,) int64: the voxels' bins at their lower intensity node, then at their upper."""
        bins = torch.empty(2 * (chunk.stop - chunk.start), dtype=torch.int64, device=self.lower.device)
        lower, upper = bins.view(2, -1)
        lower.copy_(self.lower[chunk])
        torch.add(lower, 1, out=upper)
        return bins

    def splat(self, grid: torch.Tensor, cells: range, chunk: slice, bins: torch.Tensor,
              values: Optional[torch.Tensor] = None, ones: bool = False) -> None:
        """Add (channels, voxels of ``chunk``) values of the fine-cell planes ``cells``, weighted, to ``grid``.

        ``bins``: ``bins(chunk)``. ``ones``: a channel of ones before ``values`` (the kernel's normalised
        totals, or its density).
        """
        weights = self._weights(chunk)
        channels = (0 if values is None else values.shape[0]) + ones
        weighted = torch.empty((channels, *weights.shape), device=weights.device)
        if ones:
            weighted[0] = weights
        if values is not None:
            torch.mul(values[:, None], weights, out=weighted[int(ones):])
        histogram = torch.zeros((channels, len(cells) * math.prod(self.plane_shape)), device=weights.device)
        histogram.scatter_add_(1, bins.expand(channels, -1), weighted.view(channels, -1))
        histogram = histogram.view(channels, len(cells), *self.plane_shape)
        for position, cell in enumerate(cells):
            self.z.add(grid, cell, histogram[:, position])

    def blur(self, grid: torch.Tensor, out: Optional[torch.Tensor] = None, weight: float = 1.0) -> torch.Tensor:
        """``grid`` blurred (splatted values -> weighted kernel sums at the grid's positions), into ``out``."""
        return _blur_grid(grid, self.in_plane_tents, self.blurs, torch.empty_like(grid) if out is None else out,
                          weight)

    def read(self, grid: torch.Tensor, cells: range, chunk: slice, bins: torch.Tensor) -> torch.Tensor:
        """(channels, voxels of ``chunk``): blurred ``grid`` read at the voxels of the fine-cell planes ``cells``.

        ``bins``: ``bins(chunk)``.
        """
        channels = grid.shape[0]
        planes = torch.empty((channels, len(cells), *self.plane_shape), device=grid.device)
        for position, cell in enumerate(cells):
            self.z.interpolate(grid, cell, planes[:, position])
        nodes = torch.gather(planes.view(channels, -1), 1, bins.expand(channels, -1))
        nodes = nodes.view(channels, 2, -1).mul_(self._weights(chunk))
        return nodes[:, 0].add_(nodes[:, 1])


@contextmanager
def _cpu_threads(device: torch.device, threads: int) -> Iterator[None]:
    """Limit torch's intra-op threads on the CPU for the duration of the block."""
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(min(threads, previous))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def mean_field_torch(probabilities: np.ndarray, image: np.ndarray, spacing: Sequence[float],
                     params: CRFParams, device: Optional[torch.device] = None) -> np.ndarray:
    """Dense CRF labels of one block with the PyTorch grid backend (on ``device``; None: the GPU when available,
    else one CPU thread).

    Blocks where at most ``ACTIVE_SET_FRACTION`` of the voxels can change their label (confident
    probabilities) go to ``crf_torch_active_set``, whose cost follows those voxels; the others to
    the pass over every voxel below, with coarser appearance cells where more than ``UNCERTAIN_SHARE``
    of the voxels can change.

    Args, returns: as ``crf_pydensecrf.mean_field_pydensecrf``.
    """
    if device is None:
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    with _cpu_threads(device, CPU_THREADS):
        flat = torch.from_numpy(np.ascontiguousarray(probabilities)).to(device).reshape(probabilities.shape[0], -1)
        step = CHUNK_VOXELS if device.type == "cpu" else flat.shape[1]     # small temporaries on the CPU
        changeable = sum(int((~frozen_voxels(flat[:, start:start + step], params)).sum())
                         for start in range(0, flat.shape[1], step))
        if changeable <= ACTIVE_SET_FRACTION * flat.shape[1]:
            return mean_field_active_set(probabilities, image, spacing, params, device)
        uncertain = changeable > UNCERTAIN_SHARE * flat.shape[1]
        return _mean_field(probabilities, image, spacing, params, device,
                           UNCERTAIN_CELL_FRACTION if uncertain else CELL_FRACTION)


def _mean_field(probabilities: np.ndarray, image: np.ndarray, spacing: Sequence[float], params: CRFParams,
                device: torch.device, cell_fraction: float = CELL_FRACTION) -> np.ndarray:
    shape = tuple(image.shape)
    n_classes, voxels = probabilities.shape[0], image.size
    iterations = int(params.iterations)
    if iterations < 1:
        return argmax_labels(probabilities)
    smoothness = _SmoothnessFilter(shape, spacing, params.smoothness_sigma_mm, device)
    intensity = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device).reshape(-1)
    appearance = _AppearanceFilter(shape, spacing, params.appearance_sigma_mm, intensity, params.appearance_sigma_hu,
                                   CHUNK_VOXELS if device.type == "cpu" else voxels, device, cell_fraction)

    # Logits minus the background's: -U_l + U_0 + m_l - m_0, where the background's messages m_0 are the
    # weighted normalised kernel sums over all voxels (the totals) minus the foreground labels' messages.
    # The starting marginals, softmax(-U), are splatted while the unary terms are set up, the appearance
    # kernel's with a channel of ones before them: its totals, read in the first iteration.
    probabilities = torch.from_numpy(np.ascontiguousarray(probabilities)).to(device).reshape(n_classes, voxels)
    unary_differences = torch.empty((n_classes - 1, voxels), device=device)
    downs = [torch.zeros((n_classes - 1 + channel, *f.grid_shape), device=device)
             for channel, f in ((0, smoothness), (1, appearance))]
    ups = [torch.empty_like(down) for down in downs]
    for cells, planes, chunk in appearance.chunks:
        clipped = probabilities[:, chunk].clamp(params.unary_floor, 1.0)
        marginals = clipped[1:] / clipped.sum(0)
        clipped.log_()
        torch.sub(clipped[1:], clipped[0], out=unary_differences[:, chunk])
        smoothness.splat(downs[0], planes, marginals)
        appearance.splat(downs[1], cells, chunk, appearance.bins(chunk), marginals, ones=True)
    # A difference lies within the unary's (at most -log unary_floor) +- the voxel's weighted totals.
    shifts = []
    labels = torch.empty(voxels, dtype=torch.uint8, device=device)

    for iteration in range(iterations):
        smoothness.blur(downs[0], ups[0], params.smoothness_weight)
        appearance_up = appearance.blur(downs[1], ups[1], params.appearance_weight)
        if iteration == 0:                                  # totals read in this pass, marginals only after it
            downs[1], ups[1] = downs[1][1:], ups[1][1:]
        for down in downs:
            down.zero_()
        for number, (cells, planes, chunk) in enumerate(appearance.chunks):
            bins = appearance.bins(chunk)
            messages = appearance.read(appearance_up, cells, chunk, bins)
            if iteration == 0:
                weighted_total = messages[0].add_(smoothness.normalised_total(planes), alpha=params.smoothness_weight)
                unary_differences[:, chunk] -= weighted_total
                shifts.append(-math.log(params.unary_floor) + weighted_total.max().item()
                              > EXP_SAFE - math.log(n_classes))
                messages = messages[1:]
            smoothness.add_read(ups[0], planes, messages)
            differences = messages.add_(messages.sum(0)).add_(unary_differences[:, chunk])
            if iteration == iterations - 1:
                labels[chunk] = _labels(differences)
                continue
            marginals = _foreground_marginals(differences, shifts[number])
            smoothness.splat(downs[0], planes, marginals)
            appearance.splat(downs[1], cells, chunk, bins, marginals)
    return labels.reshape(shape).cpu().numpy()
