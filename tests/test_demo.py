"""`nnunet_ppm demo --budget smoke`: every step of the README's main job, on tiny CTs, as the session's shared run
(the `tiny_dataset` fixture is this run; its dataset and models serve the other integration tests)."""
import csv
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_ppm.demo import BUDGETS, demo_steps, run_demo
from nnunet_ppm.experiment import Experiment, StepRunner, nnunet_environment
from nnunet_runs import case_ids

pytestmark = pytest.mark.integration

SMOKE = BUDGETS["smoke"]
METHODS = {"PPMTrainer+CRF+LCC": ("PPMTrainer_debug", "nnUNetPPMPlans", True),
           "PPMTrainer": ("PPMTrainer_debug", "nnUNetPPMPlans", True),
           "nnUNetTrainer_ROIs": ("nnUNetTrainer_debug", "nnUNetPlans", True),
           "nnUNetTrainer": ("nnUNetTrainer_debug", "nnUNetPlans", False)}
PROGRAMS = ["nnunet_ppm synth", "nnunet_ppm convert", "nnunet_ppm convert", "nnUNetv2_plan_and_preprocess",
            "nnunet_ppm plan", "nnunet_ppm atlas", "nnUNetv2_train", "nnUNetv2_train", "nnUNetv2_train",
            "nnunet_ppm localize", "nnunet_ppm predict-ct", "nnunet_ppm predict-ct", "nnunet_ppm predict-ct",
            "nnUNetv2_predict", "nnunet_ppm leaderboard"]


def _commands(demo):
    lines = (demo / "commands.sh").read_text(encoding="utf-8").splitlines()
    exports = {line.split("=", 1)[0][len("export "):]: line.split("=", 1)[1] for line in lines
               if line.startswith("export ")}
    commands = [shlex.split(line) for line in lines if line and not line.startswith(("#", "set ", "export "))]
    return exports, [command[next(i for i, word in enumerate(command) if "=" not in word):] for command in commands]


def _option(command, name):
    return command[command.index(name) + 1]


def test_demo_writes_its_commands_logs_and_readme(tiny_dataset):
    demo = tiny_dataset.demo
    exports, commands = _commands(demo)
    assert exports == {name: tiny_dataset.env[name] for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    assert [" ".join(c[:2]) if c[0] == "nnunet_ppm" else c[0] for c in commands] == PROGRAMS
    assert demo_steps(SMOKE) == len(PROGRAMS)
    trainings = [(c[1], _option(c, "-tr"), _option(c, "-p")) for c in commands if c[0] == "nnUNetv2_train"]
    roi_id, whole_id = str(tiny_dataset.dataset_id), str(tiny_dataset.whole_ct.dataset_id)
    assert trainings == [(roi_id, "PPMTrainer_debug", "nnUNetPPMPlans"), (roi_id, "nnUNetTrainer_debug", "nnUNetPlans"),
                         (whole_id, "nnUNetTrainer_debug", "nnUNetPlans")]
    assert len(list((demo / "logs").glob("*.log"))) == len(PROGRAMS)

    readme = (demo / "README.md").read_text(encoding="utf-8")
    assert SMOKE.note in readme
    timings = re.findall(r"^\| (\d+) \| (.+) \| (\d+) s \|$", readme, re.MULTILINE)
    assert [int(step) for step, _, _ in timings] == list(range(1, len(PROGRAMS) + 1))
    budget_rows = re.findall(r"^\| (\w+) \| (\w+) \| (ROIs|whole CTs) \| (\d+) \| (\d+) s \| ([\d.]+) s \|$", readme,
                             re.MULTILINE)
    assert [row[:4] for row in budget_rows] == [("PPMTrainer_debug", "nnUNetPPMPlans", "ROIs", "4"),
                                                ("nnUNetTrainer_debug", "nnUNetPlans", "ROIs", "4"),
                                                ("nnUNetTrainer_debug", "nnUNetPlans", "whole CTs", "4")]
    board = (demo / "leaderboard" / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Leaderboard (held-out whole CTs)" in readme
    assert "**n = 2 cases common to all methods**" in board and "**n = 2 cases common to all methods**" in readme
    assert board.splitlines()[2].startswith("**End-to-end on whole CTs, test set:"), board.splitlines()[2]


def test_demo_holds_out_whole_ct_patients_and_builds_atlases_from_training_cts_only(tiny_dataset):
    roi, whole = tiny_dataset.raw, tiny_dataset.whole_ct.raw
    held_out = case_ids(whole / "labelsTs")
    assert len(held_out) == SMOKE.test_cases and case_ids(roi / "labelsTs") == held_out
    for case in held_out:  # the same whole CTs in both datasets
        image = f"imagesTs/{case}_0000.nii.gz"
        assert (roi / image).read_bytes() == (whole / image).read_bytes(), case
    training_patients = set(case_ids(whole / "labelsTr"))
    assert not training_patients & set(held_out)
    assert {case.rsplit("_", 1)[0] for case in case_ids(roi / "labelsTr")} == training_patients  # ROIs per side
    atlases = json.loads((tiny_dataset.demo / "atlases" / "atlases.json").read_text(encoding="utf-8"))
    assert {entry["name"] for entry in atlases["atlases"]} <= training_patients
    boxes = json.loads((tiny_dataset.demo / "boxes.json").read_text(encoding="utf-8"))
    assert sorted(boxes["cases"]) == held_out


def test_demo_leaderboard_scores_every_method_on_the_held_out_whole_cts(tiny_dataset):
    demo, whole = tiny_dataset.demo, tiny_dataset.whole_ct.raw
    cases = case_ids(whole / "labelsTs")
    rows = {row["method"]: row for row in csv.DictReader(open(demo / "leaderboard" / "leaderboard.csv"))}
    assert sorted(rows) == sorted(METHODS)
    assert [name for name, row in rows.items() if row["is_reference"] == "1"] == ["nnUNetTrainer"]
    assert all(int(row["n_cases"]) == len(cases) for row in rows.values())
    _, commands = _commands(demo)
    predictions = {Path(_option(c, "-o")).name: c for c in commands if c[0] in ("nnUNetv2_predict", "nnunet_ppm")
                   and "-o" in c and c[:2] != ["nnunet_ppm", "leaderboard"] and "-tr" in c}
    for method, (trainer, plans, on_rois) in METHODS.items():
        folder = demo / "predictions" / method.replace("+", "_")
        command = predictions[folder.name]
        assert (_option(command, "-tr"), _option(command, "-p"), _option(command, "-i")) == (
            trainer, plans, str(whole / "imagesTs")), method
        assert (command[:2] == ["nnunet_ppm", "predict-ct"]) == on_rois and ("--no-crf" in command) == (
            on_rois and method != "PPMTrainer+CRF+LCC"), method
        per_case = {row["case"]: row for row in csv.DictReader(open(demo / "leaderboard" / "methods" / method /
                                                                    "metrics_per_case.csv"))}
        assert sorted(per_case) == cases, method
        for case in cases:
            reference = sitk.ReadImage(str(whole / "labelsTs" / f"{case}.nii.gz"))
            prediction = sitk.ReadImage(str(folder / f"{case}.nii.gz"))
            assert prediction.GetSize() == reference.GetSize(), (method, case)
            truth, predicted = (sitk.GetArrayFromImage(image) > 0 for image in (reference, prediction))
            dice = 2 * np.count_nonzero(truth & predicted) / (np.count_nonzero(truth) + np.count_nonzero(predicted))
            assert float(per_case[case]["kidney_tumor_dice"]) == pytest.approx(dice, abs=1e-6), (method, case)


def test_demo_trainings_store_no_test_time_mirroring(tiny_dataset):
    """The smoke and CPU budgets' trainer variants skip test-time mirroring: their real checkpoints say so."""
    for dataset, trainer, plans in ((tiny_dataset, "PPMTrainer_debug", "nnUNetPPMPlans"),
                                    (tiny_dataset, "nnUNetTrainer_debug", "nnUNetPlans"),
                                    (tiny_dataset.whole_ct, "nnUNetTrainer_debug", "nnUNetPlans")):
        checkpoint = torch.load(dataset.model(trainer, plans) / "fold_0" / "checkpoint_final.pth",
                                map_location="cpu", weights_only=False)
        assert checkpoint["trainer_name"] == trainer
        assert checkpoint["inference_allowed_mirroring_axes"] is None, trainer


def test_demo_refuses_an_output_folder_that_holds_an_earlier_demo(tmp_path):
    (tmp_path / "README.md").write_text("an earlier demo")
    with pytest.raises(SystemExit, match=f"nnunet_ppm demo: {tmp_path} holds an earlier demo; choose another --out"):
        run_demo(tmp_path, SMOKE)
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]


def test_experiment_step_whose_result_exists_is_reused_not_rerun(tmp_path, capsys):
    env = nnunet_environment(tmp_path, own_folders=True)
    steps = StepRunner(tmp_path, env, total=2)
    experiment = Experiment(tmp_path, env, steps)
    source = experiment.generate(2, 0, "tiny")
    written = {p: p.stat().st_mtime_ns for p in source.rglob("*")}
    assert experiment.generate(2, 0, "tiny") == source
    assert (steps.done, len(steps.timings)) == (2, 1), "the second generate must not run"
    assert f"[2/2] generate 2 synthetic CTs: reusing {source}" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in source.rglob("*")} == written
    commands = (tmp_path / "commands.sh").read_text(encoding="utf-8")
    assert commands.count("nnunet_ppm synth") == 1
