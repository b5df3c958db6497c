"""PPMTrainer's recipe pieces: class weights by label name and the multi-step learning rate."""
import pytest
import torch

from nnunet_ppm.training.class_weights import class_weights
from nnunet_ppm.training.lr_schedule import EpochMultiStepLR, multistep_lr, paper_lr_milestones

KITS_LABELS = {"background": 0, "kidney": 1, "tumor": 2}


def test_paper_weights_are_mapped_by_label_name_not_by_value():
    assert class_weights(KITS_LABELS, [0, 1, 2]) == [0.2, 1.0, 2.0]
    assert class_weights({"background": 0, "Tumour": 1, "Kidney": 2}, [0, 1, 2]) == [0.2, 2.0, 1.0]


def test_labels_outside_the_paper_get_the_kidney_weight():
    assert class_weights({"background": 0, "kidney": 1, "tumor": 2, "cyst": 3}, [0, 1, 2, 3]) == [0.2, 1.0, 2.0, 1.0]


def test_region_labels_are_a_clear_error():
    with pytest.raises(ValueError, match="region"):
        class_weights({"background": 0, "kidney": [1, 2], "tumor": 2}, [0, 1, 2])


def test_milestones_map_paper_epochs_3_5_7_of_8_onto_448_nnunet_epochs():
    assert paper_lr_milestones(448) == [168, 280, 392]
    assert paper_lr_milestones(100) == [38, 62, 88]


@pytest.mark.parametrize("epoch, lr", [(0, 1e-3), (167, 1e-3), (168, 1e-4), (279, 1e-4), (280, 1e-5),
                                       (391, 1e-5), (392, 1e-6), (447, 1e-6)])
def test_learning_rate_at_chosen_epochs(epoch, lr):
    assert multistep_lr(epoch, 1e-3, [168, 280, 392]) == pytest.approx(lr)


def test_scheduler_sets_the_rate_of_the_epoch_it_is_given():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = EpochMultiStepLR(optimizer, 1e-3, [168, 280, 392])
    scheduler.step(300)  # e.g. the first epoch after resuming at 300
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    scheduler.step(5)
    assert scheduler.get_last_lr() == [pytest.approx(1e-3)]
