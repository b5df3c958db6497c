"""Input validation: every bad input is reported with its case id, the source stays untouched, nothing half-written."""
import hashlib
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.dataset_conversion.convert import ConversionError, convert_dataset
from nnunet_ppm.dataset_conversion.synthesize import synthesize


@pytest.fixture(scope="module")
def valid_source(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("valid") / "src", num_cases=2, seed=1, layout="roi", progress=False)


def rewrite(path, change):
    image = sitk.ReadImage(str(path))
    sitk.WriteImage(change(image), str(path))


def with_label_voxel(value, dtype=None):
    """The label map (cast to `dtype`, e.g. a float or signed one) with one voxel set to `value`."""
    def change(label):
        array = sitk.GetArrayFromImage(label)
        array = array.astype(dtype) if dtype else array
        array[0, 0, 0] = value
        out = sitk.GetImageFromArray(array)
        out.CopyInformation(label)
        return out
    return change


def shift_origin(image):
    image.SetOrigin([o + 5.0 for o in image.GetOrigin()])
    return image


def scale_spacing(image):
    image.SetSpacing([s * 1.1 for s in image.GetSpacing()])
    return image


def flip_direction(image):
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    return image


def with_nan_and_inf(folder):
    """NaN and inf voxels, in MetaImage: SimpleITK's NIfTI reader turns them into 0 on its own."""
    image = sitk.ReadImage(str(folder / "image.nii.gz"))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array[1, 2, 3], array[2, 3, 4] = np.nan, -np.inf
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    (folder / "image.nii.gz").unlink()
    sitk.WriteImage(out, str(folder / "image.mha"))


def as_two_channels(folder):
    image = sitk.ReadImage(str(folder / "image.nii.gz"))
    (folder / "image.nii.gz").unlink()
    sitk.WriteImage(sitk.Compose(image, image), str(folder / "image.mha"))


# kind -> (how to break a copy of a valid case folder, text the error must hold)
BAD_INPUTS = {
    "shape": (lambda f: rewrite(f / "label.nii.gz", lambda im: im[:-1, :, :]), "different shapes"),
    "spacing": (lambda f: rewrite(f / "label.nii.gz", scale_spacing), "different spacing"),
    "origin": (lambda f: rewrite(f / "label.nii.gz", shift_origin), "different origins"),
    "direction": (lambda f: rewrite(f / "label.nii.gz", flip_direction), "different directions"),
    "label_values": (lambda f: rewrite(f / "label.nii.gz", with_label_voxel(7)), "label values [7] outside the expected [0, 1, 2]"),
    "fractional_label": (lambda f: rewrite(f / "label.nii.gz", with_label_voxel(1.5, np.float32)),
                         "label values [1.5] outside the expected [0, 1, 2]"),
    "negative_label": (lambda f: rewrite(f / "label.nii.gz", with_label_voxel(-1, np.int16)),
                       "label values [-1] outside the expected [0, 1, 2]"),
    "missing_image": (lambda f: (f / "image.nii.gz").unlink(), "missing image file in"),
    "missing_label": (lambda f: (f / "label.nii.gz").unlink(), "missing label file"),
    "not_3d": (lambda f: rewrite(f / "image.nii.gz", lambda im: sitk.JoinSeries([im, im])), "is 4D"),
    "multi_channel": (as_two_channels, "has 2 channels per voxel"),
    "nan": (with_nan_and_inf, "image holds 2 NaN/inf voxels"),
    "no_kidney": (lambda f: rewrite(f / "label.nii.gz", lambda im: im * 0), "no kidney"),
    "unreadable": (lambda f: (f / "image.nii.gz").write_bytes(b"not an image"), "cannot read image"),
    "truncated": (lambda f: (f / "image.nii.gz").write_bytes((f / "image.nii.gz").read_bytes()[:20000]), "is truncated or corrupt"),
    "ambiguous": (lambda f: shutil.copy(f / "image.nii.gz", f / "image.nrrd"), "ambiguous image"),
}


def checksums(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def source_with_bad_cases(valid_source, target, kinds):
    shutil.copytree(valid_source, target)
    for kind in kinds:
        shutil.copytree(valid_source / "synth_000", target / f"bad_{kind}")
        BAD_INPUTS[kind][0](target / f"bad_{kind}")
    return target


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_each_bad_input_gives_its_error_and_writes_nothing(valid_source, tmp_path, kind):
    source = source_with_bad_cases(valid_source, tmp_path / "src", [kind])
    before = checksums(source)
    raw = tmp_path / "raw"
    with pytest.raises(ConversionError) as error:
        convert_dataset(source, 510, raw_dir=raw, progress=False)
    assert list(error.value.problems) == [f"bad_{kind}"]
    assert f"bad_{kind}: " in str(error.value) and BAD_INPUTS[kind][1] in str(error.value)
    assert checksums(source) == before, "source untouched"
    assert not raw.exists() or not any(raw.iterdir()), "no dataset folder, no staging left"


def test_all_problems_are_reported_at_once_and_skip_invalid_converts_the_rest(valid_source, tmp_path):
    kinds = ["shape", "nan", "no_kidney", "missing_label"]  # header, voxel and discovery problems together
    source = source_with_bad_cases(valid_source, tmp_path / "src", kinds)
    before = checksums(source)
    with pytest.raises(ConversionError) as error:
        convert_dataset(source, 511, raw_dir=tmp_path / "raw", progress=False)
    assert sorted(error.value.problems) == sorted(f"bad_{kind}" for kind in kinds)
    folder = convert_dataset(source, 511, raw_dir=tmp_path / "raw", skip_invalid=True, progress=False)
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["synth_000.nii.gz", "synth_001.nii.gz"]
    recorded = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["nnunet_ppm"]["invalid"]
    assert sorted(recorded) == sorted(f"bad_{kind}" for kind in kinds)
    assert checksums(source) == before


def test_cli_reports_problems_and_exits_nonzero(valid_source, tmp_path, capsys):
    from nnunet_ppm.cli import main
    source = source_with_bad_cases(valid_source, tmp_path / "src", ["label_values"])
    assert main(["convert", "roi", str(source), "-d", "512", "--raw-dir", str(tmp_path / "raw")]) == 1
    assert "bad_label_values: label values [7]" in capsys.readouterr().err
    assert main(["convert", "roi", str(source), "-d", "512", "--raw-dir", str(tmp_path / "raw"), "--skip-invalid"]) == 0
    assert "invalid, not converted: bad_label_values" in capsys.readouterr().out
