"""`nnunet_ppm leaderboard` on nnU-Net result folders laid out by hand exactly as nnU-Net writes them,
and `nnunet_ppm overlay`."""
import csv
import json

import matplotlib.image
import numpy as np
import pytest
import surface_distance
from scipy.stats import wilcoxon

from label_volumes import kidney_with_tumor, synthetic_ct, write_volume
from nnunet_ppm.cli import main
from nnunet_ppm.evaluation import leaderboard as leaderboard_module
from nnunet_ppm.evaluation import overlay as overlay_module
from nnunet_ppm.evaluation.leaderboard import paired_wilcoxon
from nnunet_ppm.evaluation.methods import default_reference, display_names
from nnunet_ppm.evaluation.scope import CROSS_VALIDATION, TEST_SET, scope_statement
from nnunet_ppm.evaluation.surface_dice import KITS_TOLERANCES_MM
from test_plotting import pixel_count, shows_colour

DATASET = "Dataset501_KidneyToy"
DEFAULT = "nnUNetTrainer__nnUNetPlans__3d_fullres"
PPM = "PPMTrainer__nnUNetPPMPlans__3d_fullres"
SPACING = (2.0, 0.8, 0.8)
ROI_WINDOW = {"in_plane": "24x24", "margin": "2"}
DATASET_JSON = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "kidney": 1, "tumor": 2},
                "numTraining": 6, "file_ending": ".nii.gz",
                "nnunet_ppm": {"layout": "roi", "roi": ROI_WINDOW, "test_patients": []}}  # as `convert --roi` writes
ROI_OPTIMISTIC = "on ROIs cut around each kidney with the reference labels (window: in_plane 24x24, margin 2): " \
                 "optimistic"
WHOLE_CT_TEST = "End-to-end on whole CTs, test set"
RED, BLUE, MEDIAN_ORANGE = (255, 0, 0), (0, 0, 255), (255, 127, 14)  # matplotlib's box plot median: tab:orange


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def kits_surface_dice(reference, prediction, values, tolerance):
    """Surface Dice as KiTS23's compute_metrics_for_label computes it (DeepMind's surface-distance)."""
    reference, prediction = np.isin(reference, values), np.isin(prediction, values)
    if not reference.any() or not prediction.any():
        return float(reference.any() == prediction.any())
    distances = surface_distance.compute_surface_distances(reference, prediction, SPACING)
    return surface_distance.compute_surface_dice_at_tolerance(distances, tolerance)


def reference_labels(i):
    return kidney_with_tumor(tumor_box=((5, 9), (7 + i % 3, 11 + i % 3), (8, 12)))


def default_prediction(i):
    """Kidney and tumor shifted by one voxel along z (2 mm: beyond KiTS' Surface Dice tolerances)."""
    return np.roll(reference_labels(i), 1, axis=0)


def ppm_prediction(i):
    """Kidney exact; tumor grown by one voxel along x in odd cases."""
    labels = reference_labels(i)
    if i % 2:
        labels[5:9, 7 + i % 3:11 + i % 3, 12] = 2
    return labels


@pytest.fixture
def saved_figures(monkeypatch):
    """PNG name -> figure of every box plot and overlay the leaderboard saves, to find its axes in the PNG."""
    figures = {}
    for module in (leaderboard_module, overlay_module):
        def save_and_keep(figure, path, save=module.save_figure):
            figures[path.name] = figure
            save(figure, path)
        monkeypatch.setattr(module, "save_figure", save_and_keep)
    return figures


@pytest.fixture
def trained_dataset(nnunet_dirs):
    """nnUNet_raw / _preprocessed / _results of a 6-case dataset as nnU-Net leaves them after
    plan_and_preprocess, 2-fold training of default nnU-Net and PPMTrainer, and validation.
    PPMTrainer's fold 1 lacks case_005 (as if interrupted); a fold_all folder must be ignored."""
    raw, preprocessed, results = (nnunet_dirs[k] / DATASET for k in ("nnUNet_raw", "nnUNet_preprocessed",
                                                                     "nnUNet_results"))
    for i in range(6):
        labels = reference_labels(i)
        write_volume(raw / "imagesTr" / f"case_{i:03d}_0000.nii.gz", synthetic_ct(labels, seed=i), SPACING)
        write_volume(raw / "labelsTr" / f"case_{i:03d}.nii.gz", labels, SPACING)
        write_volume(preprocessed / "gt_segmentations" / f"case_{i:03d}.nii.gz", labels, SPACING)
    for folder in (raw, preprocessed):
        (folder / "dataset.json").write_text(json.dumps(DATASET_JSON), encoding="utf-8")
    splits = [{"train": [f"case_{i:03d}" for i in range(6) if i % 2 != fold],
               "val": [f"case_{i:03d}" for i in range(6) if i % 2 == fold]} for fold in (0, 1)]
    (preprocessed / "splits_final.json").write_text(json.dumps(splits), encoding="utf-8")
    for method, predict in ((DEFAULT, default_prediction), (PPM, ppm_prediction)):
        model = results / method
        model.mkdir(parents=True)
        (model / "dataset.json").write_text(json.dumps(DATASET_JSON), encoding="utf-8")
        (model / "plans.json").write_text(json.dumps({"dataset_name": DATASET}), encoding="utf-8")
        for fold, split in enumerate(splits):
            validation = model / f"fold_{fold}" / "validation"
            for case in split["val"]:
                if not (method == PPM and case == "case_005"):
                    write_volume(validation / f"{case}.nii.gz", predict(int(case[-3:])), SPACING)
            (validation / "summary.json").write_text("{}", encoding="utf-8")
            (model / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(b"")
        write_volume(model / "fold_all" / "validation" / "case_000.nii.gz", np.zeros((16, 24, 24), np.uint8), SPACING)
    (results / "nnUNetTrainer__nnUNetPlans__2d").mkdir()  # planned, never trained: no dataset.json, no folds
    return nnunet_dirs


def test_cross_validation_leaderboard_from_nnunet_results(trained_dataset, saved_figures, capsys):
    assert main(["leaderboard", "-d", "501", "-np", "1", "--overlay-cases", "1"]) == 0

    output = trained_dataset["nnUNet_results"] / DATASET / "leaderboard"
    common = [0, 1, 2, 3, 4]  # case_005 is missing from PPMTrainer
    default_tumor = [dice(reference_labels(i) == 2, default_prediction(i) == 2) for i in common]
    ppm_tumor = [dice(reference_labels(i) == 2, ppm_prediction(i) == 2) for i in common]
    expected_p = wilcoxon(ppm_tumor, default_tumor).pvalue

    rows = {row["method"]: row for row in csv.DictReader(open(output / "leaderboard.csv"))}
    assert set(rows) == {DEFAULT, PPM}
    assert rows[DEFAULT]["is_reference"] == "1" and rows[DEFAULT]["tumor_dice_p_value"] == ""
    assert int(rows[PPM]["n_cases"]) == 5
    assert float(rows[DEFAULT]["tumor_dice_mean"]) == pytest.approx(np.mean(default_tumor), abs=1e-5)
    assert float(rows[PPM]["tumor_dice_mean"]) == pytest.approx(np.mean(ppm_tumor), abs=1e-5)
    assert float(rows[PPM]["tumor_dice_p_value"]) == pytest.approx(expected_p, rel=1e-4)
    ppm_kidney = [dice(reference_labels(i) == 1, ppm_prediction(i) == 1) for i in common]
    assert float(rows[PPM]["kidney_dice_mean"]) == pytest.approx(np.mean(ppm_kidney), abs=1e-5)
    assert rows[PPM]["tumor_sensitivity"] == "1" and rows[PPM]["tumor_specificity"] == ""

    # Surface Dice: KiTS' values per case (tumor tolerance for tumor, kidney+masses for kidney+tumor), tested
    for structure, values, region in (("tumor", (2,), "tumor"), ("kidney_tumor", (1, 2), "kidney_and_mass")):
        surface = {method: [kits_surface_dice(reference_labels(i), predict(i), values, KITS_TOLERANCES_MM[region])
                            for i in common] for method, predict in ((DEFAULT, default_prediction),
                                                                     (PPM, ppm_prediction))}
        assert np.mean(surface[DEFAULT]) < 1
        for method in (DEFAULT, PPM):
            assert float(rows[method][f"{structure}_surface_dice_mean"]) == pytest.approx(np.mean(surface[method]),
                                                                                          abs=1e-5)
        assert float(rows[PPM][f"{structure}_surface_dice_p_value"]) == pytest.approx(
            paired_wilcoxon(np.array(surface[PPM]), np.array(surface[DEFAULT])), rel=1e-4)

    report = (output / "leaderboard.md").read_text(encoding="utf-8")
    assert "**n = 5 cases common to all methods** (cases predicted: nnUNetTrainer 6, PPMTrainer 5)" in report
    assert f"# Leaderboard {DATASET}, cross-validation\n\n**Cross-validation {ROI_OPTIMISTIC}" in report
    assert "End-to-end" not in report
    assert "| Method | Surface Dice kidney | Surface Dice tumor | Surface Dice kidney+tumor |" in report
    assert "kidney, kidney+tumor: 1.033 mm; tumor: 1.150 mm" in report
    difference = np.mean(ppm_tumor) - np.mean(default_tumor)
    verdict = f"PPMTrainer vs nnUNetTrainer: tumor Dice {difference:+.3f}, p={expected_p:.2g}, n=5"
    assert verdict in report and verdict in capsys.readouterr().out
    assert "| nnUNetTrainer (reference) | 5 |" in report
    assert "fold_all" not in report and "nnUNetTrainer__nnUNetPlans__2d: no dataset.json" in report
    # worst case: largest tumor error of both methods; best: PPMTrainer exact (even case ids)
    worst_line = next(line for line in report.splitlines() if line.startswith("- worst:"))
    best_line = next(line for line in report.splitlines() if line.startswith("- best:"))
    assert "[case_001](overlays/case_001.png)" in worst_line or "[case_003](overlays/case_003.png)" in worst_line
    assert any(f"[case_00{i}](overlays/case_00{i}.png)" in best_line for i in (0, 2, 4))
    assert sorted(p.name for p in (output / "overlays").iterdir()) == sorted(
        [worst_line.split("[")[1].split("]")[0] + ".png", best_line.split("[")[1].split("]")[0] + ".png"])
    # box plot: a panel per structure, a box per method, its median line at the median of the cases' Dice
    png = matplotlib.image.imread(output / "dice_boxplot.png")
    assert png.shape == (366, 780, 4), "3 panels of 2.6 x 2.86 in, title 0.8 in, 100 dpi"
    panels = saved_figures["dice_boxplot.png"].axes
    assert [ax.get_title() for ax in panels] == ["Dice kidney", "Dice tumor", "Dice kidney+tumor"]
    for ax, values in zip(panels, ((1,), (2,), (1, 2))):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["nnUNetTrainer", "PPMTrainer"]
        for position, predict in enumerate((default_prediction, ppm_prediction), start=1):
            median = np.median([dice(np.isin(reference_labels(i), values), np.isin(predict(i), values))
                                for i in common])
            # the line spans position +- 0.075 (8 pixels); the cases' dots (+- 0.12, half transparent) cover parts
            assert shows_colour(png, ax, position, median, MEDIAN_ORANGE, reach=6, tolerance=30), \
                (ax.get_title(), position, median)
    per_case = list(csv.DictReader(open(output / "methods" / PPM / "metrics_per_case.csv")))
    assert [row["case"] for row in per_case] == [f"case_{i:03d}" for i in common]
    assert not list(output.rglob(".tmp-*"))


def test_test_set_leaderboard_without_default_nnunet_has_no_p_values(trained_dataset, saved_figures, tmp_path):
    results = trained_dataset["nnUNet_results"] / DATASET
    raw = trained_dataset["nnUNet_raw"] / DATASET
    folders = [f"ppm={results / PPM / 'fold_0' / 'validation'}", f"other={results / DEFAULT / 'fold_0' / 'validation'}"]
    assert main(["leaderboard", "--pred", *folders, "-ref", str(raw / "labelsTr"), "-o", str(tmp_path / "lb"),
                 "-np", "1", "--overlay-cases", "0"]) == 0
    report = (tmp_path / "lb" / "leaderboard.md").read_text(encoding="utf-8")
    assert "n = 3 cases common to all methods" in report and "no p-values" in report
    assert f"**Test set {ROI_OPTIMISTIC}" in report  # labelsTr of a ROI dataset: ROIs, not whole CTs
    assert "## Verdict" not in report and not (tmp_path / "lb" / "overlays").exists()

    assert main(["leaderboard", "--pred", *folders, "-ref", str(raw / "labelsTr"), "-o", str(tmp_path / "lb2"),
                 "-np", "1", "--reference", "other", "-i", str(raw / "imagesTr"), "--overlay-cases", "1"]) == 0
    report = (tmp_path / "lb2" / "leaderboard.md").read_text(encoding="utf-8")
    assert "- ppm vs other: kidney Dice +" in report
    overlays = sorted((tmp_path / "lb2" / "overlays").glob("*.png"))
    assert len(overlays) == 2
    for path in overlays:  # columns CT, reference, other, ppm; the reference's kidney is y, x 5..18 on every slice
        png = matplotlib.image.imread(path)
        panels = np.array(saved_figures[path.name].axes).reshape(-1, 4)
        assert [ax.get_title() for ax in panels[0, 1:]] == ["reference", "other", "ppm"], "the --reference method first"
        for ct, reference, _, _ in panels:
            assert pixel_count(png, RED, ct) == pixel_count(png, BLUE, ct) == 0, "the CT column has no outlines"
            assert shows_colour(png, reference, 4.5, 12, RED, reach=2, tolerance=30), (path.name, "kidney")
        assert sum(pixel_count(png, BLUE, reference) for reference in panels[:, 1]) > 0, "the tumor outline"


def test_leaderboard_refuses_an_unknown_reference(trained_dataset):
    with pytest.raises(SystemExit, match="'nnUNetTrainer' is not one of the methods"):
        main(["leaderboard", "-d", DATASET, "--reference", "nnUNetTrainer", "-np", "1"])


def test_default_reference_is_stock_nnunet():
    assert default_reference([PPM, DEFAULT, "nnUNetTrainer_debug__nnUNetPlans__3d_fullres"]) == DEFAULT
    debug = "nnUNetTrainer_debug__nnUNetPlans__3d_fullres"
    assert default_reference([PPM, debug, "PPMTrainer__nnUNetPlans__3d_fullres"]) == debug
    assert default_reference([PPM, debug, "nnUNetTrainer_5epochs__nnUNetPlans__3d_fullres"]) is None
    assert default_reference([PPM, "nnUNetTrainer__nnUNetPPMPlans__3d_fullres", "mine"]) is None


def test_display_names_keep_what_differs():
    assert display_names([DEFAULT, PPM]) == {DEFAULT: "nnUNetTrainer", PPM: "PPMTrainer"}
    ablation = [DEFAULT, "nnUNetTrainer__nnUNetPPMPlans__3d_fullres"]
    assert display_names(ablation) == {DEFAULT: "nnUNetTrainer__nnUNetPlans",
                                       ablation[1]: "nnUNetTrainer__nnUNetPPMPlans"}
    assert display_names(["mine", DEFAULT]) == {"mine": "mine", DEFAULT: DEFAULT}


def test_paired_wilcoxon_of_identical_values_is_one():
    assert paired_wilcoxon(np.array([0.5, 0.7, 0.9]), np.array([0.5, 0.7, 0.9])) == 1.0
    assert paired_wilcoxon(np.arange(8) / 10, np.arange(8) / 10 + 0.05) == pytest.approx(
        wilcoxon(np.arange(8) / 10, np.arange(8) / 10 + 0.05).pvalue)


def test_overlay_command_writes_one_png_per_case(trained_dataset, tmp_path):
    raw = trained_dataset["nnUNet_raw"] / DATASET
    validation = trained_dataset["nnUNet_results"] / DATASET / DEFAULT / "fold_1" / "validation"
    assert main(["overlay", "-i", str(raw / "imagesTr"), "-ref", str(raw / "labelsTr"),
                 "--pred", f"nnU-Net={validation}", "-o", str(tmp_path / "png"), "--slices", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["case_001.png", "case_003.png", "case_005.png"]


def test_test_set_leaderboard_on_whole_ct_references_says_end_to_end(tmp_path):
    """Held-out patients of a ROI dataset are whole CTs in labelsTs (dataset.json lists them): end-to-end."""
    raw = tmp_path / "Dataset502_KidneyToyROI"
    patients = [f"patient_{i}" for i in range(3)]
    record = {"layout": "roi", "roi": ROI_WINDOW, "test_patients": patients}
    (raw / "labelsTs").mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({**DATASET_JSON, "nnunet_ppm": record}), encoding="utf-8")
    for i, patient in enumerate(patients):
        write_volume(raw / "labelsTs" / f"{patient}.nii.gz", reference_labels(i), SPACING)
        write_volume(tmp_path / "whole_ct_model" / f"{patient}.nii.gz", default_prediction(i), SPACING)
        write_volume(tmp_path / "roi_model" / f"{patient}.nii.gz", reference_labels(i), SPACING)

    assert main(["leaderboard", "--pred", f"whole={tmp_path / 'whole_ct_model'}", f"roi={tmp_path / 'roi_model'}",
                 "-ref", str(raw / "labelsTs"), "-o", str(tmp_path / "lb"), "--reference", "whole", "-np", "1",
                 "--overlay-cases", "0"]) == 0

    report = (tmp_path / "lb" / "leaderboard.md").read_text(encoding="utf-8")
    assert f"**{WHOLE_CT_TEST}: the reference label maps are whole CTs" in report
    assert "optimistic" not in report
    rows = {row["method"]: row for row in csv.DictReader(open(tmp_path / "lb" / "leaderboard.csv"))}
    assert float(rows["roi"]["kidney_surface_dice_mean"]) == 1
    kidney = [kits_surface_dice(reference_labels(i), default_prediction(i), (1,), KITS_TOLERANCES_MM["kidney_and_mass"])
              for i in range(3)]
    assert float(rows["whole"]["kidney_surface_dice_mean"]) == pytest.approx(np.mean(kidney), abs=1e-5)


@pytest.mark.parametrize("mode, record, cases, expected", [
    (CROSS_VALIDATION, {"roi": ROI_WINDOW, "test_patients": ["p1"]}, ["p2_left"],
     "Cross-validation " + ROI_OPTIMISTIC),
    (TEST_SET, {"roi": ROI_WINDOW, "test_patients": ["p1", "p2"]}, ["p1", "p2"], WHOLE_CT_TEST),
    (TEST_SET, {"roi": ROI_WINDOW, "test_patients": ["p1"]}, ["p1_left", "p1_right"], "Test set " + ROI_OPTIMISTIC),
    (TEST_SET, {"roi": ROI_WINDOW}, ["p1_left"], "Test set " + ROI_OPTIMISTIC),  # ROIs held out by an older convert
    (TEST_SET, {"layout": "kits23", "roi": None, "test_patients": ["p1"]}, ["p1"], WHOLE_CT_TEST),
    (CROSS_VALIDATION, {"layout": "kits19", "roi": None}, ["p1"], "End-to-end on whole CTs, cross-validation"),
    (CROSS_VALIDATION, {"layout": "roi", "roi": None}, ["p1"], "Cross-validation on the source's cases as given "
                                                               "(`roi` layout, not cut by `nnunet_ppm convert`)"),
    (TEST_SET, None, ["p1"], "Test set. Whether the reference label maps are whole CTs or ROIs cut with the "
                             "reference labels is not recorded"),
])
def test_scope_statement_says_end_to_end_or_optimistic(mode, record, cases, expected):
    statement = scope_statement(mode, record, cases)
    assert statement.startswith(expected)
    assert ("optimistic" in statement) == (not expected.startswith("End-to-end"))
