"""Scale-out on nnU-Net's machinery: PPMTrainer's networks under DistributedDataParallel.

A cohort split into prediction parts (-num_parts/-part_id): tests/test_predict_cli.py."""
import shutil

import pytest
import torch
import torch.distributed as dist
from nnunetv2.run.run_training import get_trainer_from_args
from torch.nn.parallel import DistributedDataParallel
from nnunet_runs import TINY_ROI_DATASET_ID


pytestmark = pytest.mark.integration


@pytest.mark.parametrize("plans", ["nnUNetPPMPlans", "nnUNetPlans"])
def test_ppm_trainer_network_trains_under_ddp(tiny_env, tmp_path, plans):
    """nnUNetv2_train -num_gpus N wraps the network in DDP; one CPU process (gloo) runs the same reducer checks."""
    trainer = get_trainer_from_args(str(TINY_ROI_DATASET_ID), "3d_fullres", 0, "PPMTrainer", plans, device=torch.device("cpu"))
    trainer.initialize()
    patch = list(trainer.configuration_manager.patch_size)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'ddp_store'}", rank=0, world_size=1)
    try:
        network = DistributedDataParallel(trainer.network)
        for _ in range(2):  # DDP reports parameters that got no gradient when the next iteration starts
            target = torch.randint(0, 3, (1, 1, *patch)).float()
            trainer.loss(network(torch.randn(1, 1, *patch)), target).backward()
        # every trainable parameter got a gradient; the frozen ones are exactly the auxiliary heads, which got none
        heads = trainer.network.decoder.seg_layers
        auxiliary = {f"decoder.seg_layers.{i}." for i in range(len(heads) - 1)}
        assert auxiliary, "the network has auxiliary heads to freeze"
        for name, parameter in trainer.network.named_parameters():
            assert parameter.requires_grad is not name.startswith(tuple(auxiliary)), name
            assert (parameter.grad is not None) is parameter.requires_grad, name
    finally:
        dist.destroy_process_group()
        shutil.rmtree(trainer.output_folder_base)
