"""A trained whole-CT pipeline in one zip: what `predict-ct` needs, to move to another machine.

``nnUNetv2_export_model_to_zip`` packs a model folder but not the atlases that
`predict-ct --atlases` localises with. A bundle holds

* ``model/DatasetXXX_NAME/TRAINER__PLANS__CONFIGURATION/``: dataset.json (it
  records the ROI window the model was trained with), plans.json and the
  chosen checkpoint of each chosen fold;
* ``atlases/``: the atlas folder (`nnunet_ppm atlas build`);
* ``bundle.json``: what the bundle holds and the `predict-ct` settings.

:func:`install_bundle` puts the model under ``nnUNet_results`` where nnU-Net
looks for it and the atlases beside it, never over an existing model, through
a hidden staging folder renamed at the end (an interrupted install leaves
nothing that looks installed).
"""
import json
import shutil
import zipfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Dict, List, Sequence

from nnunet_ppm import __version__
from nnunet_ppm.atomic_io import atomic_output
from nnunet_ppm.whole_ct.predict_ct import roi_window_of

FORMAT = "nnunet-ppm bundle 1"
ATLAS_FOLDER = "nnunet_ppm_atlases"  # inside the installed model folder


def export_bundle(model_folder: Path, folds: Sequence[str], checkpoint: str, atlases: Path, out: Path) -> dict:
    """Write the bundle of a model folder (its `folds`' `checkpoint`) and an atlas folder to zip `out`;
    returns its bundle.json."""
    model_folder, atlases = Path(model_folder), Path(atlases)
    window = roi_window_of(model_folder)  # raises unless the model was trained on `convert --roi` output
    if not (atlases / "atlases.json").is_file():
        raise FileNotFoundError(f"{atlases} is not an atlas folder (no atlases.json; `nnunet_ppm atlas build`)")
    files: Dict[str, Path] = {}
    model = PurePosixPath("model", model_folder.parent.name, model_folder.name)
    for name in ("dataset.json", "plans.json"):
        files[str(model / name)] = model_folder / name
    for fold in folds:
        path = model_folder / f"fold_{fold}" / checkpoint
        if not path.is_file():
            raise FileNotFoundError(f"fold {fold}: no {checkpoint} in {path.parent}")
        files[str(model / f"fold_{fold}" / checkpoint)] = path
    for path in sorted(p for p in atlases.rglob("*") if p.is_file()):
        files[str(PurePosixPath("atlases", *path.relative_to(atlases).parts))] = path
    trainer, plans, configuration = model_folder.name.split("__")
    description = {"format": FORMAT, "nnunet_ppm_version": __version__,
                   "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "dataset": model_folder.parent.name, "trainer": trainer, "plans": plans,
                   "configuration": configuration, "folds": list(folds), "checkpoint": checkpoint,
                   "roi_window": window.describe(), "files": sorted(files)}
    with atomic_output(out) as temporary:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr("bundle.json", json.dumps(description, indent=1) + "\n")
            for name, path in files.items():
                bundle.write(path, name)
    return description


def read_bundle_description(bundle: zipfile.ZipFile, name: str) -> dict:
    """bundle.json of an open bundle, checked: a bundle of this format whose members stay inside it."""
    if "bundle.json" not in bundle.namelist():
        raise ValueError(f"{name} is not an nnunet-ppm bundle (no bundle.json; `nnunet_ppm export` writes one)")
    description = json.loads(bundle.read("bundle.json"))
    if description.get("format") != FORMAT:
        raise ValueError(f"{name}: bundle format {description.get('format')!r}, this nnunet-ppm reads {FORMAT!r}")
    for member in bundle.namelist():
        path = PurePosixPath(member)
        if path.is_absolute() or ".." in path.parts or path.parts[0] not in ("bundle.json", "model", "atlases"):
            raise ValueError(f"{name}: member {member!r} would land outside the bundle's model and atlas folders")
    return description


def install_bundle(path: Path, results: Path) -> Dict[str, Path]:
    """Install bundle `path`: the model into `results` (nnUNet_results), its atlases into the model folder's
    ATLAS_FOLDER. Returns {"model": model folder, "atlases": atlas folder}."""
    with zipfile.ZipFile(path) as bundle:
        description = read_bundle_description(bundle, str(path))
        model_name = f"{description['trainer']}__{description['plans']}__{description['configuration']}"
        target = Path(results) / description["dataset"] / model_name
        if target.exists():
            raise FileExistsError(f"{target} exists: a model is installed there already (move it away first)")
        staging = target.with_name(f".installing-{target.name}")
        shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted install
        model_prefix = f"model/{description['dataset']}/{model_name}/"
        for member in bundle.infolist():
            if member.is_dir() or member.filename == "bundle.json":
                continue
            if member.filename.startswith(model_prefix):
                relative = member.filename[len(model_prefix):]
            elif member.filename.startswith("atlases/"):
                relative = f"{ATLAS_FOLDER}/{member.filename[len('atlases/'):]}"
            else:
                raise ValueError(f"{path}: member {member.filename!r} belongs to no model of bundle.json")
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as source, open(destination, "wb") as copy:
                shutil.copyfileobj(source, copy)
        (staging / "nnunet_ppm_bundle.json").write_text(json.dumps(description, indent=1) + "\n", encoding="utf-8")
        staging.rename(target)
    return {"model": target, "atlases": target / ATLAS_FOLDER}


def predict_ct_command(description: dict, installed: Dict[str, Path]) -> List[str]:
    """The `predict-ct` command line that uses an installed bundle."""
    dataset_id = str(int(description["dataset"][len("Dataset"):].split("_")[0]))
    return ["nnunet_ppm", "predict-ct", "-i", "CTS", "-o", "OUT", "-d", dataset_id, "-c", description["configuration"],
            "-tr", description["trainer"], "-p", description["plans"], "-f", *description["folds"], "-chk",
            description["checkpoint"], "--atlases", str(installed["atlases"])]
