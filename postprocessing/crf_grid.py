"""Regular-grid pieces shared by the PyTorch dense-CRF backends (``crf_torch``, ``crf_torch_active_set``).

A kernel of width sigma is applied on a grid with one cell per sigma: values are
spread linearly to the two neighbouring nodes along each axis (tent matrices),
blurred with a Gaussian of ``BLUR_STD_CELLS`` cells (linear spreading and
reading add the missing 1/3 cell^2 of variance), and read back linearly.
"""
import math
from typing import Optional

import torch

PAD = 2                        # grid nodes below the first point's coordinate (room for the blur)
BLUR_STD_CELLS = math.sqrt(2.0 / 3.0)
BLUR_RADIUS = 2


def node_count(coords_max: float) -> int:
    """Grid nodes along an axis whose largest (padded) coordinate is ``coords_max``."""
    return int(math.floor(coords_max)) + PAD + 2


def tent_matrix(coords: torch.Tensor, nodes: int) -> torch.Tensor:
    """(points, nodes) linear-interpolation weights of 1-D grid coordinates."""
    lower = coords.floor().long()
    frac = coords - lower
    matrix = torch.zeros((coords.numel(), nodes), device=coords.device)
    rows = torch.arange(coords.numel(), device=coords.device)
    matrix[rows, lower] = 1 - frac
    matrix[rows, lower + 1] = frac
    return matrix


def blur_matrix(nodes: int, device: torch.device, std: float = BLUR_STD_CELLS) -> torch.Tensor:
    """(nodes, nodes) Gaussian of ``std`` cells, truncated at ``BLUR_RADIUS`` cells."""
    offsets = torch.arange(nodes, device=device, dtype=torch.float32)
    distance = offsets[:, None] - offsets[None, :]
    matrix = torch.exp(-distance ** 2 / (2 * std ** 2))
    return matrix * (distance.abs() <= BLUR_RADIUS)


def along(values: torch.Tensor, matrix: torch.Tensor, dim: int, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Apply ``matrix`` (new, old) along dimension ``dim`` of ``values``, as one batched matrix product.

    ``out`` (the result's shape, contiguous) receives the result: a buffer reused over iterations
    spares the allocator fresh memory, whose page faults cost as much as the product here.
    """
    shape = values.shape
    if out is None:
        out = torch.empty((*shape[:dim], matrix.shape[0], *shape[dim + 1:]), device=values.device)
    if dim == values.dim() - 1:
        torch.matmul(values.reshape(-1, shape[dim]), matrix.T, out=out.view(-1, matrix.shape[0]))
    else:
        before, after = math.prod(shape[:dim]), math.prod(shape[dim + 1:])
        torch.matmul(matrix, values.reshape(before, shape[dim], after), out=out.view(before, matrix.shape[0], after))
    return out
