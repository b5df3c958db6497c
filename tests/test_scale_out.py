"""Scale-out on nnU-Net's machinery: PPMTrainer's networks under DistributedDataParallel, a cohort split into parts."""
import shutil

import pytest
import torch
import torch.distributed as dist
from nnunetv2.run.run_training import get_trainer_from_args
from torch.nn.parallel import DistributedDataParallel

from nnunet_runs import case_ids, run_command

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("plans", ["nnUNetPPMPlans", "nnUNetPlans"])
def test_ppm_trainer_network_trains_under_ddp(tiny_env, tmp_path, plans):
    """nnUNetv2_train -num_gpus N wraps the network in DDP; one CPU process (gloo) runs the same reducer checks."""
    trainer = get_trainer_from_args("900", "3d_fullres", 0, "PPMTrainer", plans, device=torch.device("cpu"))
    trainer.initialize()
    patch = list(trainer.configuration_manager.patch_size)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'ddp_store'}", rank=0, world_size=1)
    try:
        network = DistributedDataParallel(trainer.network)
        for _ in range(2):  # DDP reports parameters that got no gradient when the next iteration starts
            target = torch.randint(0, 3, (1, 1, *patch)).float()
            trainer.loss(network(torch.randn(1, 1, *patch)), target).backward()
    finally:
        dist.destroy_process_group()
        shutil.rmtree(trainer.output_folder_base)


def test_two_parts_predict_every_case_exactly_once(tiny_dataset, tmp_path):
    tiny_dataset.train("PPMTrainer_debug", "nnUNetPPMPlans")
    images = tiny_dataset.raw / "imagesTr"
    for part in (0, 1):
        run_command(["nnunet_ppm", "predict", "-i", images, "-o", tmp_path / f"part{part}", "-d",
                     tiny_dataset.dataset_id, "-c", "3d_fullres", "-f", "0", "-tr", "PPMTrainer_debug", "-p",
                     "nnUNetPPMPlans", "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_progress_bar",
                     "-num_parts", "2", "-part_id", part], tiny_dataset.env)
    parts = [set(case_ids(tmp_path / f"part{part}")) for part in (0, 1)]
    assert all(parts) and not parts[0] & parts[1]
    assert parts[0] | parts[1] == set(case_ids(images, "_0000.nii.gz"))
