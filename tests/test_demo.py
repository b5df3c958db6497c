"""`nnunet_ppm demo --budget smoke`: every step of the README's main job, on tiny CTs, as the session's shared run
(the `tiny_dataset` fixture is this run; its dataset and models serve the other integration tests)."""
import csv
import re
import shlex

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_ppm.demo import BUDGETS, run_demo
from nnunet_runs import case_ids

pytestmark = pytest.mark.integration

STEPS = 10
METHODS = ("PPMTrainer+CRF+LCC", "PPMTrainer", "nnUNetTrainer")


def test_demo_writes_its_commands_logs_and_readme(tiny_dataset):
    demo = tiny_dataset.demo
    lines = (demo / "commands.sh").read_text(encoding="utf-8").splitlines()
    exports = {line.split("=", 1)[0][len("export "):]: line.split("=", 1)[1] for line in lines
               if line.startswith("export ")}
    assert exports == {name: tiny_dataset.env[name] for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    commands = [shlex.split(line) for line in lines if line and not line.startswith(("#", "set ", "export "))]
    programs = [next(word for word in command if "=" not in word) for command in commands]
    assert programs == ["nnunet_ppm", "nnunet_ppm", "nnUNetv2_plan_and_preprocess", "nnunet_ppm", "nnUNetv2_train",
                        "nnUNetv2_train", "nnunet_ppm", "nnunet_ppm", "nnUNetv2_predict", "nnunet_ppm"]
    trainings = [command[command.index("-tr") + 1:command.index("-tr") + 4:2] for command in commands
                 if "nnUNetv2_train" in command]
    assert trainings == [["PPMTrainer_debug", "nnUNetPPMPlans"], ["nnUNetTrainer_debug", "nnUNetPlans"]]
    assert len(list((demo / "logs").glob("*.log"))) == STEPS

    readme = (demo / "README.md").read_text(encoding="utf-8")
    assert BUDGETS["smoke"].note in readme
    timings = re.findall(r"^\| (\d+) \| (.+) \| (\d+) s \|$", readme, re.MULTILINE)
    assert [int(step) for step, _, _ in timings] == list(range(1, STEPS + 1))
    board = (demo / "leaderboard" / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Leaderboard (held-out cases)" in readme
    assert "**n = 2 cases common to all methods**" in board and "**n = 2 cases common to all methods**" in readme


def test_demo_leaderboard_scores_every_method_on_the_held_out_cases(tiny_dataset):
    demo, raw = tiny_dataset.demo, tiny_dataset.raw
    cases = case_ids(raw / "labelsTs")
    assert len(cases) == BUDGETS["smoke"].test_cases
    rows = {row["method"]: row for row in csv.DictReader(open(demo / "leaderboard" / "leaderboard.csv"))}
    assert sorted(rows) == sorted(METHODS)
    assert [name for name, row in rows.items() if row["is_reference"] == "1"] == ["nnUNetTrainer"]
    assert all(int(row["n_cases"]) == len(cases) for row in rows.values())
    folders = {"PPMTrainer+CRF+LCC": "ppm_crf_lcc", "PPMTrainer": "ppm", "nnUNetTrainer": "nnunet"}
    for method, folder in folders.items():
        per_case = {row["case"]: row for row in csv.DictReader(open(demo / "leaderboard" / "methods" / method /
                                                                    "metrics_per_case.csv"))}
        assert sorted(per_case) == cases, method
        for case in cases:
            reference = sitk.ReadImage(str(raw / "labelsTs" / f"{case}.nii.gz"))
            prediction = sitk.ReadImage(str(demo / "predictions" / folder / f"{case}.nii.gz"))
            assert prediction.GetSize() == reference.GetSize(), (method, case)
            truth, predicted = (sitk.GetArrayFromImage(image) > 0 for image in (reference, prediction))
            dice = 2 * np.count_nonzero(truth & predicted) / (np.count_nonzero(truth) + np.count_nonzero(predicted))
            assert float(per_case[case]["kidney_tumor_dice"]) == pytest.approx(dice, abs=1e-6), (method, case)


def test_demo_trainings_store_no_test_time_mirroring(tiny_dataset):
    """The smoke and CPU budgets' trainer variants skip test-time mirroring: their real checkpoints say so."""
    for trainer, plans in (("PPMTrainer_debug", "nnUNetPPMPlans"), ("nnUNetTrainer_debug", "nnUNetPlans")):
        checkpoint = torch.load(tiny_dataset.results(trainer, plans) / "fold_0" / "checkpoint_final.pth",
                                map_location="cpu", weights_only=False)
        assert checkpoint["trainer_name"] == trainer
        assert checkpoint["inference_allowed_mirroring_axes"] is None, trainer


def test_demo_refuses_an_output_folder_that_holds_an_earlier_demo(tmp_path):
    (tmp_path / "README.md").write_text("an earlier demo")
    with pytest.raises(SystemExit, match=f"nnunet_ppm demo: {tmp_path} holds an earlier demo; choose another --out"):
        run_demo(tmp_path, BUDGETS["smoke"])
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
