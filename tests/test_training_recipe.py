"""PPMTrainer's recipe pieces: class weights by label name and the multi-step learning rate."""
import os
import re
import shutil

import pytest
import torch
from nnunetv2.run.run_training import get_trainer_from_args

from nnunet_ppm.training.class_weights import class_weights
from nnunet_ppm.training.lr_schedule import EpochMultiStepLR, multistep_lr, paper_lr_milestones
from nnunet_runs import TINY_ROI_DATASET_ID

KITS_LABELS = {"background": 0, "kidney": 1, "tumor": 2}


def test_paper_weights_are_mapped_by_label_name_not_by_value():
    assert class_weights(KITS_LABELS, [0, 1, 2]) == [0.2, 1.0, 2.0]
    assert class_weights({"background": 0, "Tumour": 1, "Kidney": 2}, [0, 1, 2]) == [0.2, 2.0, 1.0]


def test_a_kept_cyst_gets_the_kidney_weight():
    assert class_weights({"background": 0, "kidney": 1, "tumor": 2, "Cyst": 3}, [0, 1, 2, 3]) == [0.2, 1.0, 2.0, 1.0]


def test_an_unknown_label_name_is_an_error_that_says_how_to_rename_it():
    with pytest.raises(ValueError) as error:
        class_weights({"background": 0, "kidney": 1, "lesion": 2}, [0, 1, 2], source="Dataset900_X/dataset.json")
    message = str(error.value)
    assert message.startswith("Dataset900_X/dataset.json: no class weight for label \"lesion\": 2.")
    for accepted in ("'background' (0.2)", "'kidney' (1.0)", "'tumor' (2.0)", "'tumour' (2.0)", "'cyst' (1.0)"):
        assert accepted in message
    assert "Rename the label" in message and "class_weights_by_name" in message


def test_only_the_labels_the_network_outputs_need_a_weight():
    labels = {"background": 0, "kidney": 1, "tumor": 2, "ignore": 3}  # nnU-Net's ignore label is no output
    assert class_weights(labels, [0, 1, 2]) == [0.2, 1.0, 2.0]


@pytest.mark.integration
def test_ppm_trainer_names_its_dataset_json_when_a_label_name_is_unknown(tiny_env):
    trainer = get_trainer_from_args(str(TINY_ROI_DATASET_ID), "3d_fullres", 0, "PPMTrainer", "nnUNetPPMPlans", device=torch.device("cpu"))
    try:
        trainer.dataset_json["labels"] = {"background": 0, "kidney": 1, "lesion": 2}
        dataset_json = os.path.join(trainer.preprocessed_dataset_folder_base, "dataset.json")
        with pytest.raises(ValueError, match="^" + re.escape(f'{dataset_json}: no class weight for label "lesion": 2')):
            trainer._build_loss()
    finally:
        shutil.rmtree(trainer.output_folder_base)


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
