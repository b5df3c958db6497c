"""`nnunet_ppm predict` == `nnUNetv2_predict --save_probabilities` + `nnunet_ppm postprocess`, on a PPMTrainer_debug model.

`nnunet_ppm predict` runs as two parts into one output folder (-num_parts 2 -part_id 0/1, how a cohort is split
over GPUs or machines), one with worker processes and one without: together the parts must predict every case
exactly once, and both modes give the two-step labels.

One run with `--aggregation vote --crf-params <tune-crf's JSON> --crf-backend pydensecrf` is checked against
`nnunet_ppm postprocess` of its own probabilities, and is the uninterrupted reference of a run SIGKILLed after
its first case and completed with `--continue_prediction`."""
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.cli import main
from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_runs import case_ids, kill_when, run_command
from synthetic_postprocessing_cases import small_case, write_image, write_predict_folder

pytestmark = pytest.mark.integration


def _arrays(folder, cases):
    return {case: sitk.ReadImage(str(folder / f"{case}.nii.gz")) for case in cases}


def test_predict_equals_nnunetv2_predict_followed_by_postprocess(tiny_dataset, nnunet_ppm_prediction, tmp_path):
    images = tiny_dataset.raw / "imagesTs"
    run_command(["nnunet_ppm", "postprocess", "-i", nnunet_ppm_prediction, "-r", images, "-o", tmp_path / "two_steps",
                 "-np", "1", "--disable_progress_bar"], tiny_dataset.env)
    model = ["-i", images, "-d", tiny_dataset.dataset_id, "-c", "3d_fullres", "-f", "0", "-tr", "PPMTrainer_debug",
             "-p", "nnUNetPPMPlans", "-device", "cpu", "--disable_progress_bar", "--save_probabilities"]
    # part 0 with a preprocessing and an export worker, part 1 without worker processes
    workers = {0: ["-npp", "1", "-nps", "1"], 1: ["-npp", "0", "-nps", "0"]}
    parts = []  # the cases written by each part
    for part in (0, 1):
        before = set(case_ids(tmp_path / "ppm")) if part else set()
        run_command(["nnunet_ppm", "predict", *model, *workers[part], "-o", tmp_path / "ppm", "-num_parts", "2",
                     "-part_id", part], tiny_dataset.env)
        parts.append(set(case_ids(tmp_path / "ppm")) - before)
        for case in parts[0]:  # a rewrite by part 1 would give the file a new time (and a new inode)
            os.utime(tmp_path / "ppm" / f"{case}.nii.gz", ns=(0, 0))
    inodes = {case: (tmp_path / "ppm" / f"{case}.nii.gz").stat().st_ino for case in parts[0]}

    cases = case_ids(images, "_0000.nii.gz")
    assert len(cases) >= 2 and sorted(parts[0] | parts[1]) == cases and parts[0] and parts[1]
    assert not parts[0] & parts[1], "each part predicts its own cases"
    for case in parts[0]:
        stat = (tmp_path / "ppm" / f"{case}.nii.gz").stat()
        assert (stat.st_mtime_ns, stat.st_ino) == (0, inodes[case]), f"part 1 rewrote {case} of part 0"
    two_steps, one_step = (_arrays(folder, cases) for folder in (tmp_path / "two_steps", tmp_path / "ppm"))
    for case in cases:
        expected = sitk.GetArrayFromImage(two_steps[case])
        np.testing.assert_array_equal(sitk.GetArrayFromImage(one_step[case]), expected, err_msg=case)
        assert expected.any(), f"{case}: the debug model should predict some foreground for this test to mean something"
        for geometry in ("GetSpacing", "GetOrigin", "GetDirection"):
            assert getattr(one_step[case], geometry)() == getattr(two_steps[case], geometry)()
        with np.load(nnunet_ppm_prediction / f"{case}.npz") as nnunet, np.load(tmp_path / "ppm" / f"{case}.npz") as ppm:
            np.testing.assert_array_equal(ppm["probabilities"], nnunet["probabilities"])
    assert not list(tmp_path.glob("*/.tmp-*")), "no temporary files may be left behind"


@pytest.mark.parametrize("command, localizer", [("predict", []), ("predict-ct", ["--boxes", "boxes.json"])])
def test_predict_refuses_a_dataset_id_that_does_not_exist(nnunet_dirs, tmp_path, command, localizer):
    (tmp_path / "in").mkdir()
    with pytest.raises(SystemExit) as refused:
        main([command, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "777", "-c", "3d_fullres",
              "-f", "0", "-device", "cpu", *localizer])
    # a string code: Python prints it (no traceback) and exits with status 1
    assert isinstance(refused.value.code, str)
    assert refused.value.code.startswith(f"nnunet_ppm {command}: dataset '777': Could not find a dataset with the ID 777")
    assert not (tmp_path / "out").exists(), "nothing written"


@pytest.fixture(scope="module")
def tuned_crf_params(tmp_path_factory) -> str:
    """A CRF parameter file written by `nnunet_ppm tune-crf` on two synthetic cases; its one-point grid (both
    kernel weights 0) makes it differ from the defaults."""
    root = tmp_path_factory.mktemp("tune_crf")
    cases = {}
    (root / "ref").mkdir()
    for seed, case_id in enumerate(["kid_010", "kid_011"]):
        truth, ct, probabilities, spacing = small_case(seed=10 * seed)
        cases[case_id] = (ct, probabilities)
        write_image(truth, spacing, str(root / "ref" / f"{case_id}.nii.gz"))
    write_predict_folder(str(root / "pred"), str(root / "raw"), cases, spacing)
    (root / "grid.json").write_text(json.dumps({"appearance_weight": [0.0], "smoothness_weight": [0.0]}))
    run_command(["nnunet_ppm", "tune-crf", "-i", root / "pred", "-r", root / "raw", "-ref", root / "ref",
                 "-o", root / "crf.json", "--grid", root / "grid.json", "-np", "1", "--disable_progress_bar"],
                dict(os.environ))
    return str(root / "crf.json")


@pytest.fixture(scope="module")
def vote_prediction(tiny_dataset, tuned_crf_params, tmp_path_factory) -> SimpleNamespace:
    """An uninterrupted `predict --aggregation vote --crf-params TUNED --crf-backend pydensecrf --save_probabilities`
    of two training cases with the session's PPMTrainer_debug model."""
    tiny_dataset.model("PPMTrainer_debug", "nnUNetPPMPlans")
    root = tmp_path_factory.mktemp("vote_prediction")
    images = root / "images"
    images.mkdir()
    for case in case_ids(tiny_dataset.raw / "imagesTr", "_0000.nii.gz")[:2]:
        shutil.copy(tiny_dataset.raw / "imagesTr" / f"{case}_0000.nii.gz", images)
    args = ["nnunet_ppm", "predict", "-i", images, "-d", tiny_dataset.dataset_id, "-c", "3d_fullres", "-f", "0",
            "-tr", "PPMTrainer_debug", "-p", "nnUNetPPMPlans", "-device", "cpu", "-npp", "0", "-nps", "0",
            "--disable_progress_bar", "--save_probabilities", "--aggregation", "vote",
            "--crf-params", tuned_crf_params, "--crf-backend", "pydensecrf"]
    run_command([*args, "-o", root / "out"], tiny_dataset.env)
    return SimpleNamespace(root=root, images=images, args=args, out=root / "out",
                           cases=case_ids(images, "_0000.nii.gz"))


def _labels(folder: Path, case: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}.nii.gz")))


def test_vote_then_tuned_crf_with_pydensecrf_end_to_end(vote_prediction, tuned_crf_params, tiny_dataset):
    run = vote_prediction
    settings = json.loads((run.out / "postprocessing_settings.json").read_text(encoding="utf-8"))
    tuned = CRFParams.from_json(tuned_crf_params)
    assert tuned != CRFParams(), "tune-crf's parameters must differ from the defaults for this test to mean something"
    assert CRFParams.from_dict(settings["crf_params"]) == tuned
    assert (settings["aggregation"], settings["crf_backend"], settings["use_crf"]) == ("vote", "pydensecrf", True)

    # predict's labels == its own vote probabilities post-processed with the tuned parameters and pydensecrf ...
    postprocess = ["nnunet_ppm", "postprocess", "-i", run.out, "-r", run.images, "-np", "1", "--disable_progress_bar",
                   "--crf-backend", "pydensecrf"]
    run_command([*postprocess, "-o", run.root / "tuned", "--crf-params", tuned_crf_params], tiny_dataset.env)
    # ... and not what the default parameters give
    run_command([*postprocess, "-o", run.root / "default"], tiny_dataset.env)
    differs = []
    for case in run.cases:
        found = _labels(run.out, case)
        np.testing.assert_array_equal(found, _labels(run.root / "tuned", case), err_msg=case)
        assert found.any(), f"{case}: no foreground; the comparison below would mean little"
        differs.append(not np.array_equal(found, _labels(run.root / "default", case)))
    assert any(differs), "the tuned CRF parameters were not applied: the labels equal the default parameters' ones"


def _case_files(folder: Path, cases) -> dict:
    """{file name: modification time} of the case outputs under their final (not hidden) names."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name.split(".")[0] in cases}


def _assert_same_case_files(found: Path, expected: Path, names) -> None:
    """.nii.gz and .pkl byte-identical; .npz the same arrays (a zip member carries its write time)."""
    for name in names:
        if name.endswith(".npz"):
            with np.load(found / name) as a, np.load(expected / name) as b:
                np.testing.assert_array_equal(a["probabilities"], b["probabilities"], err_msg=name)
        else:
            assert (found / name).read_bytes() == (expected / name).read_bytes(), f"{name} differs from the reference"


def test_predict_killed_mid_cohort_completes_with_continue_prediction(vote_prediction, tiny_dataset):
    run, killed = vote_prediction, vote_prediction.root / "killed"

    def one_case_written() -> bool:  # by its final name: Path.glob("*.nii.gz") also matches a hidden .tmp-* file
        return killed.is_dir() and any(f"{case}.nii.gz" in _case_files(killed, run.cases) for case in run.cases)

    kill_when([*run.args, "-o", killed], tiny_dataset.env, one_case_written, run.root / "killed_output.txt")
    before = _case_files(killed, run.cases)
    done = [case for case in run.cases if f"{case}.nii.gz" in before]
    assert 1 <= len(done) < len(run.cases), f"the kill must interrupt the cohort; cases written: {done}"
    _assert_same_case_files(killed, run.out, before)  # what has a final name is complete and correct

    run_command([*run.args, "-o", killed, "--continue_prediction"], tiny_dataset.env)
    after = _case_files(killed, run.cases)
    assert sorted(after) == sorted(_case_files(run.out, run.cases)), "every case's outputs"
    _assert_same_case_files(killed, run.out, after)
    rewritten = [name for name in before if name.split(".")[0] in done and after[name] != before[name]]
    assert not rewritten, f"cases complete before the kill were predicted again: {rewritten}"
    leftovers = [p.name for p in killed.iterdir() if p.name.startswith(".")]
    assert all(name.startswith(".tmp-") for name in leftovers), leftovers
