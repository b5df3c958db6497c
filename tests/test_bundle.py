"""`nnunet_ppm export` / `install` (nnunet_ppm.whole_ct.bundle) on a model folder and atlases of small files."""
import json
import zipfile

import pytest

from nnunet_ppm.dataset_conversion.roi import RoiWindow
from nnunet_ppm.whole_ct.bundle import ATLAS_FOLDER, export_bundle, install_bundle, predict_ct_command
from test_cli import nnunet_ppm

MODEL = "PPMTrainer__nnUNetPPMPlans__3d_fullres"


@pytest.fixture
def trained(tmp_path):
    """A model folder as nnU-Net leaves it (two folds, logs) and an atlas folder."""
    model = tmp_path / "results" / "Dataset501_Kidneys" / MODEL
    (model / "fold_0").mkdir(parents=True)
    (model / "fold_1").mkdir()
    (model / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "kidney": 1, "tumor": 2},
                                                    "nnunet_ppm": {"roi": RoiWindow().describe()}}))
    (model / "plans.json").write_text('{"plans_name": "nnUNetPPMPlans"}')
    (model / "fold_0" / "checkpoint_final.pth").write_bytes(b"\x00weights-0" * 100)
    (model / "fold_1" / "checkpoint_final.pth").write_bytes(b"\x00weights-1" * 100)
    (model / "fold_0" / "training_log.txt").write_text("not needed to predict")
    atlases = tmp_path / "atlases"
    atlases.mkdir()
    (atlases / "atlases.json").write_text('{"atlases": []}')
    (atlases / "case_1_ct.nii.gz").write_bytes(b"ct bytes")
    return model, atlases


def test_a_bundle_installs_the_chosen_folds_and_the_atlases_byte_for_byte_and_never_over_a_model(trained, tmp_path):
    model, atlases = trained
    description = export_bundle(model, ["0"], "checkpoint_final.pth", atlases, tmp_path / "ppm.zip")
    assert description["roi_window"] == RoiWindow().describe() and description["folds"] == ["0"]
    with zipfile.ZipFile(tmp_path / "ppm.zip") as bundle:
        names = set(bundle.namelist())
    assert f"model/Dataset501_Kidneys/{MODEL}/fold_0/checkpoint_final.pth" in names
    assert not any("fold_1" in n or "training_log" in n for n in names), "only what predict-ct needs"
    installed = install_bundle(tmp_path / "ppm.zip", tmp_path / "elsewhere")
    assert installed["model"] == tmp_path / "elsewhere" / "Dataset501_Kidneys" / MODEL
    for relative in ("dataset.json", "plans.json", "fold_0/checkpoint_final.pth"):
        assert (installed["model"] / relative).read_bytes() == (model / relative).read_bytes()
    for name in ("atlases.json", "case_1_ct.nii.gz"):
        assert (installed["model"] / ATLAS_FOLDER / name).read_bytes() == (atlases / name).read_bytes()
    assert predict_ct_command(description, installed)[:8] == ["nnunet_ppm", "predict-ct", "-i", "CTS", "-o", "OUT",
                                                              "-d", "501"]
    with pytest.raises(FileExistsError, match="installed there already"):
        install_bundle(tmp_path / "ppm.zip", tmp_path / "elsewhere")
    assert not list((tmp_path / "elsewhere" / "Dataset501_Kidneys").glob(".installing-*"))


def test_export_and_install_refuse_what_predict_ct_could_not_use(trained, tmp_path):
    model, atlases = trained
    with pytest.raises(FileNotFoundError, match="fold 3: no checkpoint_final.pth"):
        export_bundle(model, ["3"], "checkpoint_final.pth", atlases, tmp_path / "x.zip")
    with pytest.raises(FileNotFoundError, match="not an atlas folder"):
        export_bundle(model, ["0"], "checkpoint_final.pth", model, tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
    export_bundle(model, ["0"], "checkpoint_final.pth", atlases, tmp_path / "ppm.zip")
    with zipfile.ZipFile(tmp_path / "ppm.zip", "a") as bundle:
        bundle.writestr("atlases/../../escape.txt", "outside")
    with pytest.raises(ValueError, match="outside the bundle"):
        install_bundle(tmp_path / "ppm.zip", tmp_path / "elsewhere")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "elsewhere").exists()
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as other:
        other.writestr("model.pth", "")
    finished = nnunet_ppm("install", str(tmp_path / "other.zip"),
                          env={"PATH": "/usr/bin", "nnUNet_results": str(tmp_path / "r")})
    assert finished.returncode == 1 and "not an nnunet-ppm bundle" in finished.stderr
