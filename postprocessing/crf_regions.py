"""Where the CRF runs: boxes around the predicted foreground, cut into memory-bounded blocks.

The CRF's cost grows with the number of voxels, and outside the kidneys it
has nothing to do. Each connected part of the predicted foreground gets its
bounding box grown by a margin; boxes that overlap are merged. A box larger
than the block limit is cut into a grid of blocks that overlap by the margin;
each block keeps the CRF result of its core only, so that every voxel's label
comes from a block in which it has at least a margin of context.
"""
import itertools
from typing import List, Sequence, Tuple

import cc3d
import numpy as np

Box = Tuple[slice, ...]


def _bounding_boxes(mask: np.ndarray, connectivity: int) -> np.ndarray:
    """(components, 3, 2) start/stop of the bounding box of every connected part of ``mask``."""
    components, count = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    if count == 0:
        return np.zeros((0, 3, 2), int)
    extents = cc3d.statistics(components, no_slice_conversion=True)["bounding_boxes"][1:].reshape(-1, 3, 2)
    extents[:, :, 1] += 1
    return extents


def foreground_boxes(foreground: np.ndarray, margin: Sequence[int]) -> List[Box]:
    """Bounding boxes of the connected parts of ``foreground`` grown by ``margin`` voxels, overlaps merged.

    Args:
        foreground: boolean 3D mask.
        margin: voxels added on both sides, per axis.

    Returns:
        Disjoint boxes (tuples of slices) clipped to the array; empty if there is no foreground.
        Merging paints the boxes and takes the bounding boxes of the painted parts until their
        number stops falling (linear in the volume, however many speckles the prediction has).
    """
    extents = _bounding_boxes(foreground, 26)
    shape = np.array(foreground.shape)
    extents[:, :, 0] = np.maximum(extents[:, :, 0] - np.asarray(margin), 0)
    extents[:, :, 1] = np.minimum(extents[:, :, 1] + np.asarray(margin), shape)
    while len(extents) > 1:
        painted = np.zeros(foreground.shape, bool)
        for extent in extents:
            painted[tuple(slice(lo, hi) for lo, hi in extent)] = True
        merged = _bounding_boxes(painted, 6)
        if len(merged) == len(extents):
            break
        extents = merged
    return [tuple(slice(int(lo), int(hi)) for lo, hi in extent) for extent in extents]


def split_into_blocks(box: Box, max_voxels: int, overlap: Sequence[int]) -> List[Tuple[Box, Box]]:
    """Cut ``box`` into a grid of blocks of at most ``max_voxels`` voxels that overlap by ``overlap``.

    Args:
        box: the region (tuple of slices with explicit start and stop).
        max_voxels: voxel limit per block (exceeded only when the overlap alone is larger).
        overlap: context voxels added on both sides of each block's core, per axis.

    Returns:
        ``(block, core)`` pairs in absolute coordinates: the CRF runs on ``block``; only the
        result inside ``core`` is kept. The cores tile ``box`` exactly.
    """
    sizes = [s.stop - s.start for s in box]
    parts = [1] * len(sizes)

    def block_voxels() -> int:
        return int(np.prod([min(size, -(-size // n) + 2 * o) for size, n, o in zip(sizes, parts, overlap)]))

    while block_voxels() > max_voxels:
        core_lengths = [-(-size // n) for size, n in zip(sizes, parts)]
        axis = int(np.argmax(core_lengths))
        if core_lengths[axis] <= 1:
            break
        parts[axis] += 1

    edges = [np.linspace(s.start, s.stop, n + 1).round().astype(int) for s, n in zip(box, parts)]
    pairs = []
    for index in itertools.product(*[range(n) for n in parts]):
        core = tuple(slice(int(e[i]), int(e[i + 1])) for e, i in zip(edges, index))
        block = tuple(slice(max(c.start - o, s.start), min(c.stop + o, s.stop)) for c, o, s in zip(core, overlap, box))
        pairs.append((block, core))
    return pairs
