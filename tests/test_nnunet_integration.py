"""Real nnU-Net commands on the tiny synthetic dataset, on the CPU: plan, train, predict, and the 2x2 ablation."""
import errno
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform
from nnunetv2.run.run_training import get_trainer_from_args

from nnunet_ppm.network import FCNPPM
from nnunet_runs import TINY_ROI_DATASET_ID, case_ids, run_command

pytestmark = pytest.mark.integration


def test_ppm_trainer_trains_and_nnunet_predicts_with_it(tiny_dataset, nnunet_ppm_prediction, tmp_path):
    model = tiny_dataset.model("PPMTrainer_debug", "nnUNetPPMPlans")
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
    assert (model / "fold_0" / "validation" / "summary.json").is_file()

    cases = case_ids(tiny_dataset.raw / "labelsTs")
    assert cases and case_ids(nnunet_ppm_prediction) == cases
    for case in cases:
        image = sitk.ReadImage(str(tiny_dataset.raw / "imagesTs" / f"{case}_0000.nii.gz"))
        prediction = sitk.ReadImage(str(nnunet_ppm_prediction / f"{case}.nii.gz"))
        assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2}
        assert prediction.GetSize() == image.GetSize()
        np.testing.assert_allclose(prediction.GetSpacing(), image.GetSpacing(), rtol=1e-6)
        np.testing.assert_allclose(prediction.GetOrigin(), image.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(prediction.GetDirection(), image.GetDirection(), atol=1e-6)

    # nnU-Net's other entry point, with its preprocessing and export workers: the same labels
    run_command(["nnUNetv2_predict_from_modelfolder", "-i", tiny_dataset.raw / "imagesTs", "-o", tmp_path / "pred_mf",
                 "-m", model, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1"], tiny_dataset.env)
    for case in cases:
        same = [sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}.nii.gz")))
                for folder in (nnunet_ppm_prediction, tmp_path / "pred_mf")]
        np.testing.assert_array_equal(*same)


def _trainer(trainer_name: str, plans: str):
    trainer = get_trainer_from_args(str(TINY_ROI_DATASET_ID), "3d_fullres", 0, trainer_name, plans, device=torch.device("cpu"))
    trainer.initialize()
    return trainer


@pytest.mark.parametrize("trainer_name, plans", [("nnUNetTrainer", "nnUNetPPMPlans"), ("PPMTrainer", "nnUNetPlans"),
                                                 ("PPMTrainer", "nnUNetPPMPlans")])
def test_one_training_step_of_each_ablation_cell(tiny_env, trainer_name, plans, capsys):
    trainer = _trainer(trainer_name, plans)
    trainer.on_train_start()
    try:
        batch = next(trainer.dataloader_train)
        loss = trainer.train_step(batch)["loss"]
        with torch.no_grad():
            outputs = trainer.network(batch["data"])
    finally:
        trainer.on_train_end()
        shutil.rmtree(trainer.output_folder_base)
    assert np.isfinite(loss)
    assert isinstance(trainer.network, FCNPPM) == (plans == "nnUNetPPMPlans")
    if trainer_name == "nnUNetTrainer":
        # "PPM network + nnU-Net recipe": nnU-Net's deep supervision, one target per output (1, 1/2, 1/4), and more
        # than the full-resolution output gets a weight (nnU-Net gives the last scale 0)
        weights = trainer.loss.weight_factors
        with capsys.disabled():
            print(f"\n{trainer_name} + {plans}: output sizes {[tuple(o.shape[2:]) for o in outputs]}, "
                  f"deep supervision loss weights {[round(float(w), 4) for w in weights]}")
        assert [o.shape[2:] for o in outputs] == [t.shape[2:] for t in batch["target"]]
        # nnU-Net's weights 1, 1/2, 1/4 with the last set to 0, normalised: the 1/2 output is trained too
        assert len(outputs) == 3 and [float(w) for w in weights] == pytest.approx([2 / 3, 1 / 3, 0.0])
    else:
        assert torch.is_tensor(outputs) and outputs.shape[2:] == batch["target"].shape[2:]


def test_ppm_trainer_uses_the_papers_recipe(tiny_env):
    trainer = _trainer("PPMTrainer", "nnUNetPPMPlans")
    try:
        group = trainer.optimizer.param_groups[0]
        assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (1e-3, 0.9, 1e-5, False)
        assert trainer.num_epochs == 448 and trainer.lr_scheduler.milestones == [168, 280, 392]
        assert trainer.loss.weight.tolist() == pytest.approx([0.2, 1.0, 2.0])
        assert not trainer.enable_deep_supervision and not trainer.network.decoder.deep_supervision
        _, _, initial_patch, mirror_axes = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        assert initial_patch == trainer.configuration_manager.patch_size and mirror_axes == (0, 1, 2)
        transforms = trainer.get_training_transforms(initial_patch, None, None, mirror_axes, False)
        assert [type(t) for t in transforms.transforms] == [MirrorTransform, RemoveLabelTansform]
    finally:
        shutil.rmtree(trainer.output_folder_base)


def test_resumed_training_gets_the_rate_of_its_epoch(tiny_env, tmp_path):
    trainer = _trainer("PPMTrainer", "nnUNetPPMPlans")
    trainer.current_epoch = 279  # the checkpoint stores the next epoch: 280, after the second decay
    trainer.save_checkpoint(str(tmp_path / "checkpoint.pth"))
    shutil.rmtree(trainer.output_folder_base)

    resumed = _trainer("PPMTrainer", "nnUNetPPMPlans")
    try:
        resumed.load_checkpoint(str(tmp_path / "checkpoint.pth"))
        resumed.on_train_epoch_start()
        assert resumed.current_epoch == 280
        assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    finally:
        shutil.rmtree(resumed.output_folder_base)


def test_a_checkpoint_save_that_fails_midway_keeps_the_previous_checkpoint(tiny_env, tmp_path, monkeypatch):
    """The disk fills up while torch.save writes: the previous checkpoint stays whole, no temporary file is left."""
    trainer = _trainer("PPMTrainer", "nnUNetPPMPlans")
    try:
        checkpoint = tmp_path / "checkpoint_latest.pth"
        trainer.current_epoch = 3
        trainer.save_checkpoint(str(checkpoint))
        before = checkpoint.read_bytes()

        def save_half_then_fill_the_disk(obj, f, *args, **kwargs):
            with open(f, "wb") as file:
                file.write(before[: len(before) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(f))

        monkeypatch.setattr(torch, "save", save_half_then_fill_the_disk)
        trainer.current_epoch = 4
        with pytest.raises(OSError, match=f"cannot write {checkpoint}: No space left on device"):
            trainer.save_checkpoint(str(checkpoint))
    finally:
        shutil.rmtree(trainer.output_folder_base)
    assert checkpoint.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [checkpoint.name]
    assert torch.load(checkpoint, map_location="cpu", weights_only=False)["current_epoch"] == 4, "the epoch-3 save"


def test_preprocessed_case_is_the_papers_formula(tiny_env):
    """nnU-Net's stored preprocessed data == (clip(x, -200, 500) + 200) / 700 - m, m = training mean of that scale.

    nnU-Net crops, normalises, then resamples; resampling is linear and keeps constants, so the
    expected array is (R + 200) / 700 - m, where R is the same case preprocessed with only the clip
    (mean 0, std 1) and m is recomputed here from the raw training images.
    """
    import copy
    import json

    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    ds = tiny_env
    plans = json.loads((ds.preprocessed / "nnUNetPPMPlans.json").read_text(encoding="utf-8"))
    dataset_json = json.loads((ds.raw / "dataset.json").read_text(encoding="utf-8"))
    images = sorted((ds.raw / "imagesTr").glob("*_0000.nii.gz"))
    voxels = np.concatenate([sitk.GetArrayFromImage(sitk.ReadImage(str(f))).ravel() for f in images])
    m = ((np.clip(voxels.astype(np.float64), -200, 500) + 200) / 700).mean()

    clip_only = copy.deepcopy(plans)
    clip_only["foreground_intensity_properties_per_channel"]["0"].update(mean=0.0, std=1.0)
    manager = PlansManager(clip_only)
    case = images[0].name[: -len("_0000.nii.gz")]
    clipped, _, _ = DefaultPreprocessor(verbose=False).run_case(
        [str(images[0])], str(ds.raw / "labelsTr" / f"{case}.nii.gz"), manager,
        manager.get_configuration("3d_fullres"), dataset_json)

    folder = ds.preprocessed / "nnUNetPPMPlans_3d_fullres"
    stored = infer_dataset_class(str(folder))(str(folder), [case]).load_case(case)[0][:]
    assert stored.shape == clipped.shape
    np.testing.assert_allclose(stored, (clipped + 200) / 700 - m, atol=2e-5)
