"""`--paper` of `nnunet_ppm predict` / `predict-ct`: the flags it stands for, its choice of one model, its conflicts."""
import argparse
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.inference import predict_cli
from nnunet_ppm.inference.paper_recipe import paper_folds, resolve_prediction_arguments
from nnunet_ppm.whole_ct import predict_ct_cli
from nnunet_runs import case_ids, run_command

CHECKPOINT = "checkpoint_final.pth"
REQUIRED_ARGS = {predict_cli: ["-i", "in", "-o", "out", "-d", "900", "-c", "3d_fullres"]}
REQUIRED_ARGS[predict_ct_cli] = [*REQUIRED_ARGS[predict_cli], "--boxes", "boxes.json"]


def _args(*flags: str, command=predict_cli) -> argparse.Namespace:
    """Parsed options of `nnunet_ppm predict` (or `predict-ct`: command=predict_ct_cli)."""
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args([*REQUIRED_ARGS[command], *map(str, flags)])


@pytest.fixture
def model_folder(tmp_path):
    """A model folder with fold_0 trained (a checkpoint file), no fold_all."""
    (tmp_path / "fold_0").mkdir()
    (tmp_path / "fold_0" / CHECKPOINT).write_bytes(b"")
    return tmp_path


def _train_fold_all(model_folder):
    (model_folder / "fold_all").mkdir(exist_ok=True)
    (model_folder / "fold_all" / CHECKPOINT).write_bytes(b"")


def test_paper_uses_fold_all_when_it_was_trained(model_folder):
    _train_fold_all(model_folder)
    assert paper_folds(model_folder, None, CHECKPOINT) == ["all"]


def test_paper_without_fold_all_needs_one_fold_named(model_folder):
    with pytest.raises(ValueError, match=r"fold_all/checkpoint_final\.pth does not exist.*name one fold with -f"):
        paper_folds(model_folder, None, CHECKPOINT)
    (model_folder / "fold_all").mkdir()  # an interrupted fold all: no final checkpoint
    with pytest.raises(ValueError, match="does not exist"):
        paper_folds(model_folder, None, CHECKPOINT)
    assert paper_folds(model_folder, ["0"], CHECKPOINT) == ["0"]


def test_paper_uses_the_one_fold_named_even_with_fold_all(model_folder):
    _train_fold_all(model_folder)
    assert paper_folds(model_folder, ["0"], CHECKPOINT) == ["0"]
    with pytest.raises(ValueError, match="one model.*not -f 0 1"):
        paper_folds(model_folder, ["0", "1"], CHECKPOINT)


def test_paper_stands_for_vote_no_mirroring_crf_and_largest_component(model_folder):
    _train_fold_all(model_folder)
    for command in (predict_cli, predict_ct_cli):  # predict-ct passes the same options on to predict
        args = resolve_prediction_arguments(_args("--paper", command=command), model_folder)
        assert (args.f, args.aggregation, args.disable_tta) == (["all"], "vote", True)
        assert (args.no_crf, args.no_lcc, args.lcc_mode) == (False, False, "largest")
        assert resolve_prediction_arguments(args, model_folder) == args, "resolving twice changes nothing"


def test_without_paper_the_defaults_are_nnunets(model_folder):
    _train_fold_all(model_folder)
    args = resolve_prediction_arguments(_args(), model_folder)
    assert (args.f, args.aggregation, args.disable_tta) == (["0", "1", "2", "3", "4"], "gaussian", False)
    args = resolve_prediction_arguments(_args("-f", 0, 1, "--aggregation", "vote"), model_folder)
    assert (args.f, args.aggregation) == (["0", "1"], "vote")


@pytest.mark.parametrize("conflict", [["--aggregation", "gaussian"], ["--no-crf"], ["--no-lcc"],
                                      ["--lcc-mode", "per-side"]])
def test_paper_refuses_flags_that_contradict_it(model_folder, conflict):
    _train_fold_all(model_folder)
    with pytest.raises(ValueError, match=f"cannot be combined with {' '.join(conflict)}"):
        resolve_prediction_arguments(_args("--paper", *conflict), model_folder)


@pytest.mark.integration
def test_paper_run_equals_the_explicit_flags_run(tiny_dataset, tmp_path):
    """On the debug model with a fold_all (fold 0's weights): --paper == -f 0 --aggregation vote --disable_tta."""
    trained = tiny_dataset.model("PPMTrainer_debug", "nnUNetPPMPlans")
    results = tmp_path / "nnUNet_results"
    model = results / trained.parent.name / trained.name
    shutil.copytree(trained, model, ignore=shutil.ignore_patterns("validation"))
    (model / "fold_all").mkdir()
    shutil.copyfile(model / "fold_0" / CHECKPOINT, model / "fold_all" / CHECKPOINT)
    env = {**tiny_dataset.env, "nnUNet_results": str(results)}
    images = tmp_path / "images"  # one case keeps it quick
    case = case_ids(tiny_dataset.raw / "imagesTs", "_0000.nii.gz")[0]
    images.mkdir()
    shutil.copyfile(tiny_dataset.raw / "imagesTs" / f"{case}_0000.nii.gz", images / f"{case}_0000.nii.gz")
    common = ["-i", images, "-d", tiny_dataset.dataset_id, "-c", "3d_fullres", "-tr", "PPMTrainer_debug",
              "-p", "nnUNetPPMPlans", "-device", "cpu", "-npp", "0", "-nps", "0", "--disable_progress_bar",
              "--save_probabilities"]
    run_command(["nnunet_ppm", "predict", *common, "-o", tmp_path / "paper", "--paper"], env)
    run_command(["nnunet_ppm", "predict", *common, "-o", tmp_path / "explicit", "-f", "0", "--aggregation", "vote",
                 "--disable_tta"], env)

    settings = json.loads((tmp_path / "paper" / "postprocessing_settings.json").read_text(encoding="utf-8"))
    assert {key: settings[key] for key in ("paper", "folds", "aggregation", "test_time_mirroring", "use_crf",
                                           "use_lcc", "lcc_mode")} == {
        "paper": True, "folds": ["all"], "aggregation": "vote", "test_time_mirroring": False, "use_crf": True,
        "use_lcc": True, "lcc_mode": "largest"}
    paper, explicit = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / run / f"{case}.nii.gz")))
                       for run in ("paper", "explicit"))
    np.testing.assert_array_equal(paper, explicit)
    assert paper.any(), f"{case}: the debug model should predict some foreground for this test to mean something"
    with np.load(tmp_path / "paper" / f"{case}.npz") as a, np.load(tmp_path / "explicit" / f"{case}.npz") as b:
        np.testing.assert_array_equal(a["probabilities"], b["probabilities"])
