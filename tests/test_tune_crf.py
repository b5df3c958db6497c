"""`nnunet_ppm tune-crf` picks the grid point with the best mean kidney/tumor Dice and writes JSON predict can read."""
import json
import os

import pytest

from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_runs import run_command
from synthetic_postprocessing_cases import small_case, write_image, write_predict_folder


@pytest.mark.integration
def test_tune_crf_writes_the_best_grid_point(tmp_path):
    cases = {}
    for seed, case_id in enumerate(["kid_010", "kid_011"]):
        truth, ct, probabilities, spacing = small_case(seed=10 * seed)
        cases[case_id] = (ct, probabilities)
        (tmp_path / "ref").mkdir(exist_ok=True)
        write_image(truth, spacing, str(tmp_path / "ref" / f"{case_id}.nii.gz"))
    write_predict_folder(str(tmp_path / "pred"), str(tmp_path / "raw"), cases, spacing)
    grid = {"appearance_weight": [0.0, 5.0], "smoothness_weight": [0.0, 3.0]}
    (tmp_path / "grid.json").write_text(json.dumps(grid), encoding="utf-8")

    run_command(["nnunet_ppm", "tune-crf", "-i", tmp_path / "pred", "-r", tmp_path / "raw", "-ref", tmp_path / "ref",
                 "-o", tmp_path / "crf.json", "--grid", tmp_path / "grid.json", "-np", "2", "--disable_progress_bar"],
                dict(os.environ))

    written = json.loads((tmp_path / "crf.json").read_text(encoding="utf-8"))
    table = written["tuning"]["grid_results"]
    assert len(table) == 4
    best_row = max(table, key=lambda row: row["mean_dice"])
    best = CRFParams.from_json(str(tmp_path / "crf.json"))
    assert (best.appearance_weight, best.smoothness_weight) == (best_row["appearance_weight"],
                                                                best_row["smoothness_weight"]) == (5.0, 3.0)
    assert written["tuning"]["best_mean_dice"] == best_row["mean_dice"] > written["tuning"]["without_crf_mean_dice"]
