"""Held-out patients stay whole CTs, drawn before any ROI selection; cross-validation folds keep patients whole."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from nnunet_runs import case_ids, command_env, run_command
from nnunetv2.utilities.crossval_split import generate_crossval_split

from nnunet_ppm.dataset_conversion.convert import convert_dataset
from nnunet_ppm.dataset_conversion.labels import CYST, KIDNEY, TUMOR
from nnunet_ppm.dataset_conversion.patient_splits import (StaleSplitsError, choose_test_patients, install_splits,
                                                          patient_grouped_splits)
from nnunet_ppm.dataset_conversion.synthesize import synthesize, synthesize_case

NUM_PATIENTS = 5


@pytest.fixture(scope="module")
def kits23_source(tmp_path_factory):
    """Five tiny KiTS23 patients: one with a cyst, one whose tumor was relabelled kidney (no ROI without --keep-healthy).

    Returns (source folder, cyst patient, tumor-free patient, split seed holding out exactly those two).
    """
    seed = next(s for s in range(50) if any(np.any(synthesize_case(i, s)[1] == CYST) for i in range(NUM_PATIENTS)))
    source = synthesize(tmp_path_factory.mktemp("sources") / "kits23", num_cases=NUM_PATIENTS, seed=seed,
                        layout="kits23", progress=False)
    patients = [f"case_{i:05d}" for i in range(NUM_PATIENTS)]
    cyst_patient = next(p for p in patients if np.any(read_array(label_file(source, p)) == CYST))
    tumor_free = next(p for p in patients if p != cyst_patient)
    label = sitk.ReadImage(str(label_file(source, tumor_free)))
    relabelled = sitk.GetImageFromArray(np.where(sitk.GetArrayViewFromImage(label) == TUMOR, KIDNEY,
                                                 sitk.GetArrayViewFromImage(label)).astype(np.uint8))
    relabelled.CopyInformation(label)
    sitk.WriteImage(sitk.Cast(relabelled, label.GetPixelID()), str(label_file(source, tumor_free)), True)
    split_seed = next(s for s in range(500) if choose_test_patients(patients, 2, s) == {cyst_patient, tumor_free})
    return source, cyst_patient, tumor_free, split_seed


def label_file(source: Path, patient: str) -> Path:
    return source / "dataset" / patient / "segmentation.nii.gz"


def read_array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def nnunet_ppm_section(folder):
    return json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["nnunet_ppm"]


def test_roi_conversion_holds_out_whole_cts_the_whole_ct_conversion_holds_out(kits23_source, tmp_path, capsys):
    source, cyst_patient, tumor_free, split_seed = kits23_source
    held_out = sorted([cyst_patient, tumor_free])
    roi = convert_dataset(source, 540, "kits23", roi=True, roi_size="100mm", test_cases=2, split_seed=split_seed,
                          raw_dir=tmp_path / "roi", progress=False)
    assert "2 held-out patients as whole CTs" in capsys.readouterr().out
    whole = convert_dataset(source, 541, "kits23", test_cases=2, split_seed=split_seed, raw_dir=tmp_path / "whole",
                            progress=False)
    by_fraction = convert_dataset(source, 542, "kits23", roi=True, roi_size="100mm", test_fraction=0.4,
                                  split_seed=split_seed, raw_dir=tmp_path / "fraction", progress=False)
    for folder in (roi, whole, by_fraction):
        assert case_ids(folder / "labelsTs") == held_out
        assert case_ids(folder / "imagesTs") == [f"{case}_0000" for case in held_out]
        assert nnunet_ppm_section(folder)["test_patients"] == held_out
    assert nnunet_ppm_section(roi)["roi_orientation"] == "IPL", "KiTS files: index axes point inferior, posterior, left"
    assert nnunet_ppm_section(whole)["roi_orientation"] is None

    for case in held_out:
        source_ct = sitk.ReadImage(str(source / "dataset" / case / "imaging.nii.gz"))
        source_label = read_array(label_file(source, case))
        image = sitk.ReadImage(str(roi / "imagesTs" / f"{case}_0000.nii.gz"))
        label = sitk.ReadImage(str(roi / "labelsTs" / f"{case}.nii.gz"))
        for written in (image, label):
            assert written.GetSize() == source_ct.GetSize()
            assert written.GetSpacing() == pytest.approx(source_ct.GetSpacing())
            assert written.GetOrigin() == pytest.approx(source_ct.GetOrigin())
            assert written.GetDirection() == pytest.approx(source_ct.GetDirection())
        assert np.array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(source_ct))
        assert np.array_equal(sitk.GetArrayViewFromImage(label), np.where(source_label == CYST, KIDNEY, source_label))
        assert np.array_equal(read_array(whole / "imagesTs" / f"{case}_0000.nii.gz"), sitk.GetArrayViewFromImage(image))
        assert np.array_equal(read_array(whole / "labelsTs" / f"{case}.nii.gz"), sitk.GetArrayViewFromImage(label))
    assert np.any(read_array(label_file(source, cyst_patient)) == CYST), "the cyst mapping was exercised"
    assert not np.any(read_array(label_file(source, tumor_free)) == TUMOR), "a patient without tumor was held out"

    manifest = json.loads((roi / "roi_manifest.json").read_text(encoding="utf-8"))
    training_patients = sorted({entry["source_case"] for entry in manifest})
    assert not set(training_patients) & set(held_out)
    assert len(training_patients) == NUM_PATIENTS - 2, "every training patient has a tumor kidney"
    assert case_ids(roi / "labelsTr") == sorted(entry["roi_case"] for entry in manifest)
    assert json.loads((roi / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == len(manifest)
    assert "whole CTs" in nnunet_ppm_section(roi)["test_set"]


def assert_patient_grouped(splits, case_patients, num_folds):
    """`splits` has `num_folds` folds; each validates whole patients, trains on the others, covers every case."""
    assert len(splits) == num_folds
    validated = [case for split in splits for case in split["val"]]
    assert sorted(validated) == sorted(case_patients), "every training case in exactly one validation set"
    for split in splits:
        val_patients = {case_patients[c] for c in split["val"]}
        assert {case_patients[c] for c in split["train"]}.isdisjoint(val_patients)
        assert sorted(split["train"] + split["val"]) == sorted(case_patients)
        assert sorted(split["val"]) == sorted(c for c, p in case_patients.items() if p in val_patients)


def test_roi_dataset_gets_a_patient_grouped_splits_file_whole_cts_none(kits23_source, tmp_path):
    source, _, _, split_seed = kits23_source
    roi = convert_dataset(source, 543, "kits23", roi=True, roi_size="100mm", keep_healthy=True, test_cases=1,
                          split_seed=split_seed, raw_dir=tmp_path, progress=False)
    manifest = json.loads((roi / "roi_manifest.json").read_text(encoding="utf-8"))
    case_patients = {entry["roi_case"]: entry["source_case"] for entry in manifest}
    assert len(case_patients) > len(set(case_patients.values())), "some patients have two ROIs"
    splits = json.loads((roi / "splits_final.json").read_text(encoding="utf-8"))
    assert_patient_grouped(splits, case_patients, num_folds=NUM_PATIENTS - 1)  # fewer than 5 patients: one fold each
    whole = convert_dataset(source, 544, "kits23", test_cases=1, split_seed=split_seed, raw_dir=tmp_path, progress=False)
    assert not (whole / "splits_final.json").exists(), "whole CTs: nnU-Net's own split is already by patient"


def test_conversion_warns_about_another_split_already_in_nnunet_preprocessed(kits23_source, nnunet_dirs, capsys):
    """nnU-Net's planner refuses to copy the raw split over a different one: the conversion says so, changing nothing."""
    source = kits23_source[0]
    old_split = nnunet_dirs["nnUNet_preprocessed"] / "Dataset545_KiTS23ROI" / "splits_final.json"
    old_split.parent.mkdir()
    old_split.write_text(json.dumps([{"train": ["case_00000_left"], "val": ["case_00001_left"]}]), encoding="utf-8")
    before = old_split.read_bytes()
    folder = convert_dataset(source, 545, "kits23", roi=True, roi_size="100mm", progress=False)
    assert f"warning: {old_split} holds another split" in capsys.readouterr().out
    assert old_split.read_bytes() == before
    old_split.write_bytes((folder / "splits_final.json").read_bytes())
    convert_dataset(source, 545, "kits23", roi=True, roi_size="100mm", overwrite=True, progress=False)
    assert "warning" not in capsys.readouterr().out


def two_roi_patients(count):
    return {f"p{i}_{side}": f"p{i}" for i in range(count) for side in ("left", "right") if side == "left" or i % 3}


def test_grouped_split_is_nnunets_own_split_over_patients():
    one_case_each = {f"case_{i:05d}": f"case_{i:05d}" for i in range(9)}
    assert patient_grouped_splits(one_case_each) == generate_crossval_split(sorted(one_case_each), seed=12345, n_splits=5)
    assert_patient_grouped(patient_grouped_splits(two_roi_patients(8)), two_roi_patients(8), num_folds=5)
    assert_patient_grouped(patient_grouped_splits(two_roi_patients(3)), two_roi_patients(3), num_folds=3)
    assert patient_grouped_splits({"p0_left": "p0", "p0_right": "p0"}) == []


def test_install_splits_writes_once_and_never_replaces_an_existing_file(tmp_path):
    patients = two_roi_patients(6)
    path = tmp_path / "splits_final.json"
    assert install_splits(tmp_path, patients).startswith("wrote")
    assert json.loads(path.read_text(encoding="utf-8")) == patient_grouped_splits(patients)
    assert "already holds" in install_splits(tmp_path, patients)

    by_case = generate_crossval_split(sorted(patients), seed=12345, n_splits=5)  # nnU-Net's default: by ROI
    assert any(len({patients[c] for c in s["train"]} & {patients[c] for c in s["val"]}) for s in by_case)
    path.write_text(json.dumps(by_case), encoding="utf-8")
    message = install_splits(tmp_path, patients)
    assert message.startswith("warning: kept") and "trains and validates on the same patient" in message
    assert json.loads(path.read_text(encoding="utf-8")) == by_case

    stale = [{"train": sorted(patients)[1:] + ["old_case"], "val": sorted(patients)[:1]}]
    path.write_text(json.dumps(stale), encoding="utf-8")
    with pytest.raises(StaleSplitsError, match="old_case"):
        install_splits(tmp_path, patients)
    assert json.loads(path.read_text(encoding="utf-8")) == stale


DO_SPLIT = """
import json, sys, torch
from nnunetv2.run.run_training import get_trainer_from_args
trainer = get_trainer_from_args(sys.argv[1], "3d_fullres", 0, "nnUNetTrainer", "nnUNetPlans", device=torch.device("cpu"))
folds = []
for fold in range(int(sys.argv[2])):
    trainer.fold = fold
    train, val = trainer.do_split()
    folds.append({"train": sorted(train), "val": sorted(val)})
print("SPLITS " + json.dumps(folds))
"""


@pytest.mark.integration
def test_nnunet_trains_on_patient_grouped_folds_of_a_roi_dataset(tmp_path):
    """convert --roi, then nnU-Net's own dataset check, planning, preprocessing and trainer: every fold validates
    whole patients."""
    env = command_env(tmp_path)
    source = synthesize(tmp_path / "source", num_cases=6, seed=0, preset="tiny", layout="roi", progress=False)
    output = run_command(["nnunet_ppm", "convert", "roi", source, "-d", "610", "--roi", "--roi-size", "100mm",
                          "--keep-healthy", "--test-cases", "1"], env).stdout
    assert "1 held-out patients as whole CTs" in output
    raw = Path(env["nnUNet_raw"]) / "Dataset610_KidneyTumorROI"
    case_patients = {e["roi_case"]: e["source_case"] for e in json.loads((raw / "roi_manifest.json").read_text())}
    assert len(case_patients) == 10, "five training patients, two ROIs each"
    output = run_command(["nnUNetv2_plan_and_preprocess", "-d", "610", "-c", "3d_fullres", "-np", "1", "-npfp", "1",
                          "--verify_dataset_integrity"], env).stdout
    assert "verify_dataset_integrity Done" in output
    assert len(list((Path(env["nnUNet_preprocessed"]) / raw.name / "nnUNetPlans_3d_fullres").glob("*.pkl"))) == 10
    preprocessed = Path(env["nnUNet_preprocessed"]) / raw.name / "splits_final.json"
    splits = json.loads(preprocessed.read_text(encoding="utf-8"))
    assert splits == json.loads((raw / "splits_final.json").read_text(encoding="utf-8"))
    assert_patient_grouped(splits, case_patients, num_folds=5)

    output = run_command([Path(sys.executable).name, "-c", DO_SPLIT, "610", "5"], env).stdout
    assert json.loads(output.split("SPLITS ", 1)[1]) == splits, "nnU-Net's trainer uses the grouped folds"

    preprocessed.unlink()  # e.g. nnU-Net planned before the dataset had one: `nnunet_ppm plan` puts it back
    output = run_command(["nnunet_ppm", "plan", "-d", "610", "--no-preprocess", "-np", "1"], env).stdout
    assert "5 folds grouped by patient" in output
    assert json.loads(preprocessed.read_text(encoding="utf-8")) == splits
