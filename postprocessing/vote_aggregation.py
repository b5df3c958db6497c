"""Majority voting of overlapping sub-volume predictions (paper, section II.B).

The paper feeds 64-slice sub-volumes through the network and labels voxels
where sub-volumes overlap by majority vote. :class:`SubVolumeVotes`
accumulates, for every voxel, the votes (argmax of each sub-volume's softmax)
and the summed probabilities of every class. The result is returned as
log-probabilities, so nnU-Net's usual path (resampling, softmax, argmax,
export) can follow unchanged:

    f_c = (votes_c + TIE_BREAK * mean_probability_c) / (coverage + TIE_BREAK)

``f`` sums to 1 over classes and is the vote fraction up to ``TIE_BREAK``
(1 %); its argmax is the majority vote, ties resolved by summed probability
(``TIE_BREAK * mean_probability_c < 1`` never outweighs a vote). These
fractions are the probabilities the CRF sees under ``--aggregation vote``.
"""
from typing import Sequence, Union

import torch

TIE_BREAK = 0.01
LOG_FLOOR = 1e-8

SpatialIndex = Sequence[Union[slice, int]]


class SubVolumeVotes:
    """Votes and summed softmax probabilities of sub-volumes, per class and voxel.

    Args:
        num_classes: number of output channels (softmax classes).
        spatial_shape: shape of the whole (padded) volume.
        device: where the accumulators live.
    """

    def __init__(self, num_classes: int, spatial_shape: Sequence[int], device: torch.device):
        self.votes = torch.zeros((num_classes, *spatial_shape), dtype=torch.int16, device=device)
        self.probability_sums = torch.zeros((num_classes, *spatial_shape), dtype=torch.float32, device=device)

    def add(self, sub_volume_logits: torch.Tensor, index: SpatialIndex) -> None:
        """Count one sub-volume: its logits (classes, *sub-volume) sit at ``index`` (spatial slices) of the volume."""
        probabilities = torch.softmax(sub_volume_logits.float(), 0)
        winner = probabilities.argmax(0)
        for label in range(self.votes.shape[0]):
            self.votes[(label, *index)] += (winner == label).to(torch.int16)
        self.probability_sums[(slice(None), *index)] += probabilities

    def log_fractions(self) -> torch.Tensor:
        """log f_c (see module doc) as float32, shape (classes, *volume); uncovered voxels get equal values for all classes."""
        return log_vote_fractions(self.votes, self.probability_sums)


def log_vote_fractions(votes: torch.Tensor, probability_sums: torch.Tensor) -> torch.Tensor:
    """log f_c (see module doc) of vote counts and summed probabilities, each (classes, *volume), as float32.

    Counts may come from several sub-volume passes added together (e.g. several folds).
    """
    coverage = votes.sum(0, dtype=torch.float32).clamp_min(1.0)
    fractions = (votes.float() + TIE_BREAK * probability_sums / coverage) / (coverage + TIE_BREAK)
    return fractions.clamp_min(LOG_FLOOR).log()
