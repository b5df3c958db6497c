"""PPMTrainer: nnU-Net training with the recipe of Yang et al. (ICPR 2018), whatever network the plans name.

* loss: weighted cross-entropy only (Eq. 1), background 0.2 / kidney 1.0 / tumor 2.0
  by label name, cyst 1.0, any other label name an error (see ``class_weights``;
  averaged over voxels by their weights, as torch's CE does);
* no deep supervision;
* SGD, momentum 0.9, no Nesterov, weight decay 1e-5, learning rate 1e-3, divided by
  10 from epochs 168, 280 and 392 of 448 (see ``lr_schedule``);
* augmentation: random crops with nnU-Net's foreground oversampling (the data
  loader) and mirroring, nothing else (no rotation, scaling, intensity changes).

Everything else (data loading, validation, checkpoints, fp16 autocast on CUDA,
gradient clipping at 12, multi-GPU DDP) is nnU-Net's own; without deep
supervision the network's auxiliary output heads are frozen, so that DDP
accepts it (see ``build_network_architecture``). Checkpoints are nnU-Net's,
written atomically: a run killed or out of disk space while saving keeps the
previous checkpoint_latest.pth, from which ``--c`` resumes.
"""
import os
from typing import List, Tuple, Union

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform
from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunet_ppm.atomic_io import atomic_output
from nnunet_ppm.training.class_weights import PAPER_CLASS_WEIGHTS, class_weights
from nnunet_ppm.training.lr_schedule import PAPER_EPOCHS, EpochMultiStepLR, paper_lr_milestones


class PPMTrainer(nnUNetTrainer):
    """nnUNetTrainer with the paper's loss, optimizer, schedule and augmentation."""

    class_weights_by_name = PAPER_CLASS_WEIGHTS

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 1e-3
        self.weight_decay = 1e-5
        self.momentum = 0.9
        self.num_epochs = PAPER_EPOCHS
        self.enable_deep_supervision = False

    @staticmethod
    def build_network_architecture(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> torch.nn.Module:
        """nnU-Net's network from the plans; without deep supervision its auxiliary output heads are frozen.

        Without deep supervision only the last of ``decoder.seg_layers`` (the full-resolution head,
        in FCNPPM as in nnU-Net's U-Nets) makes the output; the others never get a gradient, which
        DistributedDataParallel (``nnUNetv2_train -num_gpus N``) refuses in the second iteration
        ("parameters that were not used in producing loss"). Frozen, they are left out of its
        gradient reduction; they keep their initial weights, as they would anyway.
        """
        network = nnUNetTrainer.build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                           num_output_channels, enable_deep_supervision)
        heads = getattr(getattr(network, "decoder", None), "seg_layers", None)
        if not enable_deep_supervision and heads is not None:
            for head in heads[:-1]:
                head.requires_grad_(False)
        return network

    def _build_loss(self) -> torch.nn.Module:
        if self.label_manager.has_regions:
            raise ValueError(f"{self.plans_manager.dataset_name} uses region-based labels; PPMTrainer's weighted "
                             f"cross-entropy needs one integer value per label in dataset.json")
        weights = class_weights(self.dataset_json["labels"], self.label_manager.all_labels, self.class_weights_by_name,
                                source=os.path.join(self.preprocessed_dataset_folder_base, "dataset.json"))
        self.print_to_log_file(f"weighted cross-entropy, weights per label {dict(zip(self.label_manager.all_labels, weights))}")
        ignore_label = self.label_manager.ignore_label
        return RobustCrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=self.device),
                                      ignore_index=ignore_label if ignore_label is not None else -100)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.network.parameters(), self.initial_lr, momentum=self.momentum,
                                    weight_decay=self.weight_decay, nesterov=False)
        milestones = paper_lr_milestones(self.num_epochs)
        self.print_to_log_file(f"learning rate {self.initial_lr}, x0.1 from epochs {milestones} of {self.num_epochs}")
        return optimizer, EpochMultiStepLR(optimizer, self.initial_lr, milestones)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """No spatial augmentation: the loader crops the final patch directly; mirror along every axis."""
        mirror_axes = tuple(range(len(self.configuration_manager.patch_size)))
        self.inference_allowed_mirroring_axes = mirror_axes
        return None, False, list(self.configuration_manager.patch_size), mirror_axes

    @staticmethod
    def get_training_transforms(patch_size: Union[np.ndarray, Tuple[int]], rotation_for_DA, deep_supervision_scales,
                                mirror_axes: Tuple[int, ...], do_dummy_2d_data_aug: bool, use_mask_for_norm=None,
                                is_cascaded: bool = False, foreground_labels=None, regions=None,
                                ignore_label: int = None) -> BasicTransform:
        """Mirroring only; label -1 (padding outside the image) becomes background as in nnU-Net."""
        transforms: List[BasicTransform] = []
        if mirror_axes:
            transforms.append(MirrorTransform(allowed_axes=mirror_axes))
        transforms.append(RemoveLabelTansform(-1, 0))
        return ComposeTransforms(transforms)

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written to a temporary file and renamed into place when complete."""
        if self.local_rank != 0 or self.disable_checkpointing:
            return super().save_checkpoint(filename)
        with atomic_output(filename) as temporary:
            super().save_checkpoint(str(temporary))
