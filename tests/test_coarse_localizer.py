"""The coarse-model localiser (`nnunet_ppm localize --coarse-model`) with a model trained until it localises.

186 s alone on 2 CPU cores; in the suite, on one worker beside the smoke run's trainings on the other, 278 s
(docs/development.md).
"""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.roi import Length, RoiWindow, roi_box
from nnunet_ppm.training.variants import ITERATIONS_ENV
from nnunet_ppm.whole_ct.recall import roi_recall
from nnunet_runs import case_ids, command_env, run_command

pytestmark = pytest.mark.integration

DATASET_ID = 902
# nnU-Net's trainer (its loss and learning rate) on the PPM network's plans: on the tiny whole CTs it localises
# within minutes, where PPMTrainer's weighted loss still marks half the CT (docs/development.md)
COARSE_TRAINER = "nnUNetTrainer_learningCurve"  # seeded, ITERATIONS_ENV iterations in 5 epochs
COARSE_ITERATIONS = 400
# the boxes of a model trained this briefly stop a voxel or two short of some kidneys in-plane (measured: 96.9 %
# and 98.7 % of two of the four held-out kidneys without a margin); users of a coarse model set one the same way
KIDNEY_MARGIN_MM = 10.0
WINDOW = RoiWindow((Length(110, "mm"), Length(110, "mm")), Length(10, "mm"))  # the demo's ROI window


def test_a_coarse_model_trained_on_whole_cts_boxes_every_held_out_kidney(tmp_path):
    """The smoke run's 7 tiny CTs (same seed, 2 held out) as whole CTs; the PPM network planned on them (`nnunet_ppm
    plan --patch 24 32 32`) and trained with COARSE_TRAINER for COARSE_ITERATIONS iterations (seeded, no
    data-loading workers: the same model every run). `localize --coarse-model` finds the right and the left kidney
    of each held-out CT; the ROI around each box holds >= 99% of that kidney's kidney and tumor voxels, and no box
    is half the CT (recall is not bought with a box around everything)."""
    env = command_env(tmp_path)
    source = tmp_path / "source"
    run_command(["nnunet_ppm", "synth", source, "--cases", 7, "--seed", 0, "--preset", "tiny", "--layout", "roi",
                 "-np", 1], env)
    run_command(["nnunet_ppm", "convert", "roi", source, "-d", DATASET_ID, "-np", 1, "--test-cases", 2,
                 "--split-seed", 0], env)
    run_command(["nnUNetv2_extract_fingerprint", "-d", DATASET_ID, "-np", 1], env)
    run_command(["nnUNetv2_plan_experiment", "-d", DATASET_ID], env)
    run_command(["nnunet_ppm", "plan", "-d", DATASET_ID, "--patch", 24, 32, 32, "--batch-size", 2, "-np", 1], env)
    training_env = {**env, ITERATIONS_ENV: str(COARSE_ITERATIONS), "nnUNet_n_proc_DA": "0"}
    run_command(["nnUNetv2_train", DATASET_ID, "3d_fullres", "0", "-tr", COARSE_TRAINER, "-p", "nnUNetPPMPlans",
                 "-device", "cpu"], training_env)
    raw = next((tmp_path / "nnUNet_raw").glob(f"Dataset{DATASET_ID}_*"))
    model = tmp_path / "nnUNet_results" / raw.name / f"{COARSE_TRAINER}__nnUNetPPMPlans__3d_fullres"
    out = tmp_path / "coarse.json"
    run_command(["nnunet_ppm", "localize", "-i", raw / "imagesTs", "-o", out, "--coarse-model", model,
                 "--coarse-folds", "0", "--kidney-margin", KIDNEY_MARGIN_MM, "-device", "cpu",
                 "--disable_progress_bar"], env)

    report = json.loads(out.read_text())
    assert report["localizer"]["kind"] == "nnunet" and report["localizer"]["model"] == str(model)
    assert sorted(report["cases"]) == case_ids(raw / "labelsTs")
    for case, entry in report["cases"].items():
        ct = sitk.ReadImage(str(raw / "imagesTs" / f"{case}_0000.nii.gz"))
        reference = sitk.ReadImage(str(raw / "labelsTs" / f"{case}.nii.gz"))
        assert [kidney["side"] for kidney in entry["kidneys"]] == ["right", "left"], (case, entry)
        for kidney in entry["kidneys"]:
            assert 0 < kidney["confidence"] <= 1, (case, kidney)
            assert np.prod([stop - start for start, stop in kidney["kidney_box"]]) < np.prod(ct.GetSize()) / 2, \
                (case, kidney)
        boxes = {kidney["side"]: roi_box(tuple(map(tuple, kidney["kidney_box"])), ct.GetSpacing()[::-1],
                                         ct.GetDirection(), WINDOW)[0] for kidney in entry["kidneys"]}
        recalls = roi_recall(case, reference, boxes, ct)
        assert sorted(r.side for r in recalls) == ["left", "right"], (case, recalls)
        assert all(r.found and r.fraction >= 0.99 for r in recalls), (case, recalls, entry)
