"""Label schemes, case files and `nnunet_ppm evaluate` end to end."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import surface_distance

from label_volumes import kidney_with_tumor, write_volume
from nnunet_ppm.cli import main
from nnunet_ppm.evaluation.cases import CasePair
from nnunet_ppm.evaluation.evaluate import evaluate_case, evaluate_pairs
from nnunet_ppm.evaluation.labels import LabelScheme, load_label_scheme, scheme_from_labels
from nnunet_ppm.evaluation.surface_dice import KITS_TOLERANCES_MM

KITS23_NNUNET_REGIONS = {"background": 0, "kidney": [1, 2, 3], "masses": [2, 3], "tumor": 2}


def test_label_schemes_from_dataset_json_labels():
    assert scheme_from_labels({"background": 0, "kidney": 1, "tumor": 2}) == LabelScheme(1, 2)
    plain = scheme_from_labels({"background": 0, "Kidney": 2, "Tumour": 1, "cyst": 3, "ureter": 4})
    assert (plain.kidney, plain.tumor, plain.cyst, plain.other) == (2, 1, 3, frozenset({4}))
    assert plain.structures() == {"kidney": (2,), "tumor": (1,), "kidney_tumor": (2, 1),
                                  "kidney_masses": (2, 1, 3), "masses": (1, 3)}
    assert scheme_from_labels(KITS23_NNUNET_REGIONS) == LabelScheme(kidney=1, tumor=2, cyst=3)
    assert set(LabelScheme().structures()) == {"kidney", "tumor", "kidney_tumor"}
    with pytest.raises(ValueError, match="no 'kidney' and 'tumor'"):
        scheme_from_labels({"background": 0, "liver": 1, "tumor": 2}, source="my.json")
    with pytest.raises(ValueError, match="cannot be read as kidney/masses/tumor"):
        scheme_from_labels({"background": 0, "kidney": [1, 2], "tumor": [2, 3]})


def test_missing_dataset_json_means_kits19_numbering():
    assert load_label_scheme(None) == LabelScheme(kidney=1, tumor=2, cyst=None)


def write_pair(folder, case_id, reference, prediction, spacing=(2.0, 0.8, 0.8), prediction_spacing=None):
    write_volume(folder / "ref" / f"{case_id}.nii.gz", reference, spacing)
    write_volume(folder / "pred" / f"{case_id}.nii.gz", prediction, prediction_spacing or spacing)
    return CasePair(case_id, folder / "ref" / f"{case_id}.nii.gz", folder / "pred" / f"{case_id}.nii.gz")


def test_geometry_mismatch_is_an_error_naming_the_case(tmp_path):
    labels = kidney_with_tumor()
    pair = write_pair(tmp_path, "case_007", labels, labels, prediction_spacing=(2.5, 0.8, 0.8))
    with pytest.raises(ValueError, match=r"case case_007: .*spacing"):
        evaluate_case(pair, LabelScheme())
    write_volume(pair.prediction, labels[:, :-1], (2.0, 0.8, 0.8))
    with pytest.raises(ValueError, match=r"case case_007: .*shape \(16, 23, 24\) instead of \(16, 24, 24\)"):
        evaluate_case(pair, LabelScheme())


def test_unexpected_label_values_are_an_error_naming_the_case(tmp_path):
    labels = kidney_with_tumor()
    prediction = labels.copy()
    prediction[0, 0, 0] = 3
    pair = write_pair(tmp_path, "case_002", labels, prediction)
    with pytest.raises(ValueError, match=r"case case_002: prediction .* label values \[3\]"):
        evaluate_case(pair, LabelScheme())
    assert evaluate_case(pair, LabelScheme(cyst=3)).structures["masses"].dice < 1


def test_parallel_evaluation_keeps_case_order(tmp_path):
    pairs = [write_pair(tmp_path, f"case_{i}", kidney_with_tumor(), kidney_with_tumor(tumor_box=None))
             for i in range(3)]
    results = evaluate_pairs(pairs, LabelScheme(), num_processes=2)
    assert [r.case_id for r in results] == ["case_0", "case_1", "case_2"]
    assert [r.tumor_detection for r in results] == ["FN"] * 3


def test_evaluate_command_writes_case_table_and_summary(tmp_path):
    spacing = (2.0, 0.8, 0.8)
    reference = kidney_with_tumor()
    shifted = np.roll(reference, 1, axis=2)
    healthy = kidney_with_tumor(tumor_box=None)
    with_false_tumor = healthy.copy()
    with_false_tumor[4:6, 6:8, 6:8] = 2
    cases = {"case_a": (reference, reference), "case_b": (reference, shifted),
             "case_c": (healthy, with_false_tumor), "case_d": (healthy, healthy)}
    for case_id, (ref, pred) in cases.items():
        write_pair(tmp_path, case_id, ref, pred, spacing)
    write_volume(tmp_path / "ref" / "case_e.nii.gz", healthy, spacing)  # no prediction for this one
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "kidney": 1, "tumor": 2}, "file_ending": ".nii.gz"}), encoding="utf-8")

    assert main(["evaluate", "-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"),
                 "-o", str(tmp_path / "out"), "-np", "1"]) == 0

    rows = list(csv.DictReader(open(tmp_path / "out" / "metrics_per_case.csv")))
    assert [row["case"] for row in rows] == ["case_a", "case_b", "case_c", "case_d"]
    assert [row["tumor_detection"] for row in rows] == ["TP", "TP", "FP", "TN"]
    assert float(rows[0]["kidney_dice"]) == 1 and float(rows[1]["kidney_dice"]) < 1
    tumor_voxels_b = 4 * 4 * 4
    overlap_b = 4 * 4 * 3
    assert float(rows[1]["tumor_dice"]) == pytest.approx(2 * overlap_b / (2 * tumor_voxels_b), abs=1e-5)
    assert float(rows[2]["tumor_volume_prediction_ml"]) == pytest.approx(2 * 2 * 2 * 2.0 * 0.8 * 0.8 / 1000)
    # Surface Dice: the 0.8 mm shift of case_b is within KiTS' tolerances, so it is perfect where Dice is not;
    # case_c's tumor exists only in the prediction (0), case_d has none on either side (1)
    surface = {row["case"]: {s: float(row[f"{s}_surface_dice"]) for s in ("kidney", "tumor", "kidney_tumor")}
               for row in rows}
    assert surface["case_a"] == surface["case_b"] == {"kidney": 1, "tumor": 1, "kidney_tumor": 1}
    assert surface["case_c"]["tumor"] == 0 and surface["case_d"]["tumor"] == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_cases"] == 4 and summary["cases_without_prediction"] == ["case_e"]
    assert summary["surface_dice_tolerance_mm"] == {"kidney": KITS_TOLERANCES_MM["kidney_and_mass"],
                                                   "tumor": KITS_TOLERANCES_MM["tumor"],
                                                   "kidney_tumor": KITS_TOLERANCES_MM["kidney_and_mass"]}
    assert "kidney alone and kidney+tumor take KiTS' kidney+masses tolerance" in summary["rules"]["surface_dice"]
    assert summary["structures"]["tumor"]["surface_dice"]["mean"] == pytest.approx(
        np.mean([surface[case]["tumor"] for case in surface]), abs=1e-5)
    assert summary["tumor_detection"] == {"TP": 2, "FP": 1, "FN": 0, "TN": 1, "sensitivity": 1.0,
                                          "specificity": 0.5}
    tumor_dice = [float(row["tumor_dice"]) for row in rows]
    assert summary["structures"]["tumor"]["dice"]["mean"] == pytest.approx(np.mean(tumor_dice), abs=1e-5)
    assert summary["structures"]["tumor"]["dice"]["std"] == pytest.approx(np.std(tumor_dice, ddof=1), abs=1e-5)
    assert summary["dataset_json"] == str((tmp_path / "dataset.json").resolve())
    for text in ((tmp_path / "out" / "metrics_per_case.csv").read_text(encoding="utf-8"), json.dumps(summary)):
        assert "nan" not in text.lower()
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_evaluate_entry_point_reports_orphan_predictions(tmp_path):
    write_pair(tmp_path, "case_a", kidney_with_tumor(), kidney_with_tumor())
    (tmp_path / "ref" / "case_a.nii.gz").rename(tmp_path / "ref" / "case_z.nii.gz")
    finished = subprocess.run([sys.executable, "-m", "nnunet_ppm.cli", "evaluate", "-ref", str(tmp_path / "ref"),
                               "-pred", str(tmp_path / "pred"), "-o", str(tmp_path / "out")],
                              capture_output=True, encoding="utf-8", errors="replace")
    assert finished.returncode != 0
    assert "have no reference .nii.gz file" in finished.stderr and "case_a" in finished.stderr
    assert not (tmp_path / "out").exists()


def test_kits23_regions_on_real_labels(kits23_labels_dir, tmp_path):
    """A real KiTS23 label map with cysts: predicting cyst as tumor keeps 'masses' perfect, hurts 'tumor'."""
    source = kits23_labels_dir / "case_00402.nii.gz"  # 49 slices, kidney, tumor and cyst
    if not source.is_file():
        pytest.skip(f"{source} not found")
    image = sitk.ReadImage(str(source))
    reference = sitk.GetArrayFromImage(image)
    cyst_as_tumor, moved_in_plane = np.where(reference == 3, 2, reference), np.roll(reference, 2, axis=1)
    for name, array in (("cyst_as_tumor", cyst_as_tumor), ("moved", moved_in_plane)):
        prediction = sitk.GetImageFromArray(array.astype(reference.dtype))
        prediction.CopyInformation(image)
        (tmp_path / name).mkdir()
        sitk.WriteImage(prediction, str(tmp_path / name / "case_00402.nii.gz"))
    scheme = scheme_from_labels(KITS23_NNUNET_REGIONS)

    result = evaluate_case(CasePair("case_00402", source, tmp_path / "cyst_as_tumor" / "case_00402.nii.gz"), scheme)
    moved = evaluate_case(CasePair("case_00402", source, tmp_path / "moved" / "case_00402.nii.gz"), scheme)

    tumor, cyst = (reference == 2).sum(), (reference == 3).sum()
    assert result.structures["masses"].dice == result.structures["kidney_masses"].dice == 1
    assert result.structures["kidney"].dice == 1
    assert result.structures["tumor"].dice == pytest.approx(2 * tumor / (2 * tumor + cyst))
    voxel_ml = np.prod(image.GetSpacing()) / 1000
    assert result.structures["tumor"].volume_difference_ml == pytest.approx(cyst * voxel_ml)
    assert result.tumor_detection == "TP"
    # KiTS' Surface Dice of its three regions, as kits23/evaluation/metrics.py computes them with DeepMind's code
    assert result.structures["masses"].surface_dice == result.structures["kidney_masses"].surface_dice == 1
    spacing = image.GetSpacing()[::-1]
    for prediction, evaluated in ((cyst_as_tumor, result), (moved_in_plane, moved)):
        for structure, values, region in (("kidney_masses", (1, 2, 3), "kidney_and_mass"),
                                          ("masses", (2, 3), "mass"), ("tumor", (2,), "tumor")):
            distances = surface_distance.compute_surface_distances(np.isin(reference, values),
                                                                   np.isin(prediction, values), spacing)
            kits = surface_distance.compute_surface_dice_at_tolerance(distances, KITS_TOLERANCES_MM[region])
            assert evaluated.structures[structure].surface_dice == pytest.approx(kits, abs=1e-12), structure
    assert 0 < moved.structures["kidney_masses"].surface_dice < 1


def test_evaluate_never_writes_into_the_prediction_folder(tmp_path):
    write_pair(tmp_path, "case_a", kidney_with_tumor(), kidney_with_tumor())
    (tmp_path / "pred" / "summary.json").write_text("nnU-Net's", encoding="utf-8")
    with pytest.raises(SystemExit, match="not -ref or -pred"):
        main(["evaluate", "-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "-o", str(tmp_path / "pred")])
    assert (tmp_path / "pred" / "summary.json").read_text(encoding="utf-8") == "nnU-Net's"
