"""`nnunet_ppm leaderboard -d` on real nnU-Net result folders: PPMTrainer_debug and nnUNetTrainer_debug,
trained on the CPU on the shared tiny dataset, checked against nnU-Net's own validation summaries."""
import csv
import json
import math

import matplotlib.image
import numpy as np
import pytest
import SimpleITK as sitk
import surface_distance
from scipy.stats import wilcoxon

from nnunet_ppm.evaluation.surface_dice import KITS_TOLERANCES_MM
from nnunet_runs import case_ids, run_command
from test_leaderboard import BLUE, MEDIAN_ORANGE, RED
from test_plotting import pixel_count

pytestmark = pytest.mark.integration


def nnunet_dice(model_folder, case_id, label):
    """Dice of one label in one case as nnU-Net's validation summary.json reports it (NaN: both empty)."""
    summary = json.loads((model_folder / "fold_0" / "validation" / "summary.json").read_text(encoding="utf-8"))
    case = next(c for c in summary["metric_per_case"] if c["prediction_file"].endswith(f"/{case_id}.nii.gz"))
    return case["metrics"][str(label)]["Dice"]


def test_leaderboard_of_two_cpu_trained_nnunet_result_folders(tiny_dataset, tmp_path):
    ppm = tiny_dataset.model("PPMTrainer_debug", "nnUNetPPMPlans")
    default = tiny_dataset.model("nnUNetTrainer_debug", "nnUNetPlans")
    output = tmp_path / "leaderboard"

    printed = run_command(["nnunet_ppm", "leaderboard", "-d", tiny_dataset.dataset_id, "-o", output, "-np", "1",
                           "--overlay-cases", "1"], tiny_dataset.env).stdout

    cases = case_ids(ppm / "fold_0" / "validation")
    assert cases and cases == case_ids(default / "fold_0" / "validation")
    rows = {row["method"]: row for row in csv.DictReader(open(output / "leaderboard.csv"))}
    assert set(rows) == {ppm.name, default.name}
    assert rows[default.name]["is_reference"] == "1" and rows[ppm.name]["is_reference"] == "0"
    assert int(rows[ppm.name]["n_cases"]) == len(cases)
    # per case, our kidney / tumor Dice equal nnU-Net's label 1 / label 2 Dice (where nnU-Net defines it)
    dice = {}
    for model in (ppm, default):
        per_case = {row["case"]: row for row in csv.DictReader(open(output / "methods" / model.name /
                                                                    "metrics_per_case.csv"))}
        assert sorted(per_case) == cases
        for structure, label in (("kidney", 1), ("tumor", 2)):
            ours = [float(per_case[case][f"{structure}_dice"]) for case in cases]
            theirs = [nnunet_dice(model, case, label) for case in cases]
            assert [o if math.isnan(t) else pytest.approx(t, abs=1e-5) for o, t in zip(ours, theirs)] == ours
            dice[model.name, structure] = ours
    for structure in ("kidney", "tumor"):
        mean_difference = (sum(dice[ppm.name, structure]) - sum(dice[default.name, structure])) / len(cases)
        differences = [a - b for a, b in zip(dice[ppm.name, structure], dice[default.name, structure])]
        p = 1.0 if not any(differences) else wilcoxon(dice[ppm.name, structure], dice[default.name, structure]).pvalue
        assert float(rows[ppm.name][f"{structure}_dice_p_value"]) == pytest.approx(p, rel=1e-4)
        verdict = f"PPMTrainer_debug vs nnUNetTrainer_debug: {structure} Dice {mean_difference:+.3f}"
        assert verdict in printed and verdict in (output / "leaderboard.md").read_text(encoding="utf-8")
    # KiTS Surface Dice of every case, as KiTS23's evaluation computes it with DeepMind's package
    per_case = {row["case"]: row for row in csv.DictReader(open(output / "methods" / ppm.name /
                                                                "metrics_per_case.csv"))}
    for case in cases:
        reference = sitk.ReadImage(str(tiny_dataset.preprocessed / "gt_segmentations" / f"{case}.nii.gz"))
        prediction = sitk.GetArrayFromImage(sitk.ReadImage(str(ppm / "fold_0" / "validation" / f"{case}.nii.gz")))
        truth, spacing = sitk.GetArrayFromImage(reference), reference.GetSpacing()[::-1]
        for structure, values, region in (("kidney_tumor", (1, 2), "kidney_and_mass"), ("tumor", (2,), "tumor")):
            truth_mask, prediction_mask = np.isin(truth, values), np.isin(prediction, values)
            if truth_mask.any() and prediction_mask.any():
                distances = surface_distance.compute_surface_distances(truth_mask, prediction_mask, spacing)
                kits = surface_distance.compute_surface_dice_at_tolerance(distances, KITS_TOLERANCES_MM[region])
            else:
                kits = float(truth_mask.any() == prediction_mask.any())
            assert float(per_case[case][f"{structure}_surface_dice"]) == pytest.approx(kits, abs=1e-5), case
    assert all(f"{structure}_surface_dice_p_value" in rows[ppm.name] for structure in ("kidney", "tumor"))
    report = (output / "leaderboard.md").read_text(encoding="utf-8")
    assert f"**n = {len(cases)} cases common to all methods**" in report
    assert "## Surface Dice (KiTS21/23)" in report
    # the tiny dataset's training cases are ROIs cut with the reference labels: the header says so, and optimistic
    assert "**Cross-validation on ROIs cut around each kidney with the reference labels (window: " in report
    assert "optimistic, because the reference labels located the kidney" in report
    linked = [line.split("](")[1].split(")")[0] for line in report.splitlines() if line.startswith(("- worst", "- best"))]
    assert linked
    for name in linked:  # each case's reference column outlines its kidney (red) and tumor (blue)
        png = matplotlib.image.imread(output / name)
        assert pixel_count(png, RED) > 0 and pixel_count(png, BLUE) > 0, name
    boxplot = matplotlib.image.imread(output / "dice_boxplot.png")
    assert boxplot.shape == (366, 780, 4), "3 panels (kidney, tumor, kidney+tumor) of 2.6 in, 100 dpi"
    assert pixel_count(boxplot, MEDIAN_ORANGE) > 0, "the boxes' median lines"
