"""`nnunet_ppm predict` == `nnUNetv2_predict --save_probabilities` + `nnunet_ppm postprocess`, on a PPMTrainer_debug model.

`nnunet_ppm predict` runs as two parts into one output folder (-num_parts 2 -part_id 0/1, how a cohort is split
over GPUs or machines): together the parts must predict every case exactly once."""
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_runs import case_ids, run_command

pytestmark = pytest.mark.integration


def _arrays(folder, cases):
    return {case: sitk.ReadImage(str(folder / f"{case}.nii.gz")) for case in cases}


def test_predict_equals_nnunetv2_predict_followed_by_postprocess(tiny_dataset, tmp_path):
    tiny_dataset.train("PPMTrainer_debug", "nnUNetPPMPlans")
    images = tiny_dataset.raw / "imagesTs"
    model = ["-i", images, "-d", tiny_dataset.dataset_id, "-c", "3d_fullres", "-f", "0", "-tr", "PPMTrainer_debug",
             "-p", "nnUNetPPMPlans", "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_progress_bar"]
    run_command(["nnUNetv2_predict", *model, "-o", tmp_path / "nnunet", "--save_probabilities"], tiny_dataset.env)
    run_command(["nnunet_ppm", "postprocess", "-i", tmp_path / "nnunet", "-r", images, "-o", tmp_path / "two_steps",
                 "-np", "1", "--disable_progress_bar"], tiny_dataset.env)
    written = []  # {case: modification time} after each part
    for part in (0, 1):
        run_command(["nnunet_ppm", "predict", *model, "-o", tmp_path / "ppm", "--save_probabilities",
                     "-num_parts", "2", "-part_id", part], tiny_dataset.env)
        written.append({case: (tmp_path / "ppm" / f"{case}.nii.gz").stat().st_mtime_ns
                        for case in case_ids(tmp_path / "ppm")})

    cases = case_ids(images, "_0000.nii.gz")
    assert len(cases) >= 2 and sorted(written[1]) == cases
    assert 0 < len(written[0]) < len(cases), "each part predicts some of the cases"
    assert all(written[1][case] == time for case, time in written[0].items()), "part 1 rewrote a case of part 0"
    two_steps, one_step = _arrays(tmp_path / "two_steps", cases), _arrays(tmp_path / "ppm", cases)
    for case in cases:
        expected, found = sitk.GetArrayFromImage(two_steps[case]), sitk.GetArrayFromImage(one_step[case])
        np.testing.assert_array_equal(found, expected, err_msg=case)
        assert found.any(), f"{case}: the debug model should predict some foreground for this test to mean something"
        for geometry in ("GetSpacing", "GetOrigin", "GetDirection"):
            assert getattr(one_step[case], geometry)() == getattr(two_steps[case], geometry)()
        with np.load(tmp_path / "nnunet" / f"{case}.npz") as nnunet, np.load(tmp_path / "ppm" / f"{case}.npz") as ppm:
            np.testing.assert_array_equal(ppm["probabilities"], nnunet["probabilities"])
    assert not list(tmp_path.glob("*/.tmp-*")), "no temporary files may be left behind"
