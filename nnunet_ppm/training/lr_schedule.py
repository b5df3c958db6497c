"""The paper's multi-step learning rate, mapped onto nnU-Net epochs.

Paper (III.B.3): base rate 1e-3, multi-step decay at paper epochs 3, 5 and 7 of
8, a paper epoch being 14,000 iterations at batch 4. nnU-Net epochs have 250
iterations, so 8 paper epochs = 8 * 14000 / 250 = 448 nnU-Net epochs, and the
rate drops x0.1 from nnU-Net epoch 168, 280 and 392 on (3/8, 5/8, 7/8 of the
run; shorter variants scale the same fractions).
"""
from typing import List, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import _LRScheduler

PAPER_EPOCHS = 448
PAPER_DECAY_FRACTIONS = (3 / 8, 5 / 8, 7 / 8)
PAPER_DECAY_FACTOR = 0.1


def paper_lr_milestones(num_epochs: int) -> List[int]:
    """Epochs from which the rate is divided by 10 again: 168, 280, 392 for 448 epochs."""
    return [round(num_epochs * f) for f in PAPER_DECAY_FRACTIONS]


def multistep_lr(epoch: int, initial_lr: float, milestones: Sequence[int],
                 factor: float = PAPER_DECAY_FACTOR) -> float:
    """Learning rate at `epoch` (0-based): ``initial_lr * factor ** (number of milestones <= epoch)``."""
    return initial_lr * factor ** sum(epoch >= m for m in milestones)


class EpochMultiStepLR(_LRScheduler):
    """Multi-step rate computed from the epoch number alone, so a resumed run gets the exact rate.

    Like nnU-Net's PolyLRScheduler, `step(current_epoch)` is called at the start of each epoch.
    """

    def __init__(self, optimizer: Optimizer, initial_lr: float, milestones: Sequence[int],
                 factor: float = PAPER_DECAY_FACTOR):
        self.initial_lr, self.milestones, self.factor = initial_lr, list(milestones), factor
        self.ctr = 0
        super().__init__(optimizer, -1)

    def step(self, current_step: int = None) -> None:
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        lr = multistep_lr(current_step, self.initial_lr, self.milestones, self.factor)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
