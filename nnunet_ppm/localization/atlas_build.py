"""`nnunet_ppm atlas build`: choose representative whole CTs of an nnU-Net raw dataset and store them as atlases.

    nnunet_ppm atlas build -d 501 -o atlases/          # 8 atlases at 4 mm, as the paper's eight
    nnunet_ppm atlas build -d /path/to/Dataset501_KiTS19 -o atlases/ -n 4 --spacing 3

The dataset must hold whole CTs (a conversion without ``--roi``) with labels
background / kidney / tumor (/ cyst); its training cases (imagesTr, labelsTr)
are the candidates. Which cases were chosen and why is recorded in
``atlases.json`` (:mod:`.atlas_selection`); the folder appears only when
complete.
"""
import argparse
import json
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from nnunetv2.paths import nnUNet_raw
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

from nnunet_ppm.dataset_conversion.case_pool import run_per_case
from nnunet_ppm.dataset_conversion.image_files import read_image
from nnunet_ppm.dataset_conversion.output_folder import staged_folder
from nnunet_ppm.localization.atlas_selection import choose_atlases, kidney_features
from nnunet_ppm.localization.atlas_set import make_atlas, save_atlases

PathLike = Union[str, Path]
DEFAULT_COUNT = 8  # the paper's eight atlases
DEFAULT_SPACING_MM = 4.0
DEFAULT_REGION_MARGIN_MM = 40.0


def raw_dataset_folder(dataset: str) -> Path:
    """An nnU-Net raw dataset folder from a path, a dataset id or a DatasetXXX_Name (in $nnUNet_raw)."""
    if Path(dataset).is_dir():
        return Path(dataset)
    if not nnUNet_raw.is_set():
        raise FileNotFoundError(f"{dataset!r} is not a folder and nnUNet_raw is not set to look it up")
    folder = Path(nnUNet_raw.get()) / maybe_convert_to_dataset_name(dataset)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    return folder


def whole_ct_cases(dataset_folder: Path) -> Dict[str, Tuple[str, str]]:
    """{case: (CT file, label file)} of the training cases; refuses datasets of ROIs or with several channels."""
    description = json.loads((dataset_folder / "dataset.json").read_text(encoding="utf-8"))
    if (description.get("nnunet_ppm") or {}).get("roi") or (dataset_folder / "roi_manifest.json").exists():
        raise ValueError(f"{dataset_folder} holds per-kidney ROIs; atlases need whole CTs "
                         f"(convert the source again without --roi)")
    labels = description.get("labels", {})
    if labels.get("kidney") != 1 or labels.get("tumor") != 2:
        raise ValueError(f"{dataset_folder}/dataset.json: expected labels kidney 1 and tumor 2, found {labels}")
    cases = get_filenames_of_train_images_and_targets(str(dataset_folder), description)
    several = [case for case, files in cases.items() if len(files["images"]) != 1]
    if several:
        raise ValueError(f"{dataset_folder}: atlases need one CT channel per case; {several[:3]} have more")
    return {case: (files["images"][0], files["label"]) for case, files in sorted(cases.items())}


def _features(job: Tuple[str, str]) -> Tuple[str, Optional[dict]]:
    case, label_file = job
    return case, kidney_features(read_image(label_file))


def _make_atlas(job: Tuple[str, str, str, float, float]):
    case, image_file, label_file, spacing_mm, region_margin_mm = job
    return make_atlas(case, read_image(image_file), read_image(label_file), spacing_mm, region_margin_mm)


def build_atlases(dataset: str, out: PathLike, count: int = DEFAULT_COUNT, spacing_mm: float = DEFAULT_SPACING_MM,
                  region_margin_mm: float = DEFAULT_REGION_MARGIN_MM, num_processes: int = 1,
                  overwrite: bool = False, progress: bool = True) -> Path:
    """Choose `count` atlases among the training cases of `dataset` and write them to `out`; returns `out`."""
    if count < 1 or spacing_mm <= 0 or region_margin_mm < 0:
        raise ValueError("need count >= 1, spacing_mm > 0 and region_margin_mm >= 0")
    folder = raw_dataset_folder(dataset)
    cases = whole_ct_cases(folder)
    results = run_per_case(_features, [(case, files[1]) for case, files in cases.items()], num_processes,
                           "kidney features", progress)
    features = {case: values for case, values in results if values is not None}
    left_out = {case: "not both kidneys" for case, values in results if values is None}
    chosen, selection = choose_atlases(features, count)
    jobs = [(case, *cases[case], spacing_mm, region_margin_mm) for case in chosen]
    atlases = run_per_case(_make_atlas, jobs, num_processes, "atlases", progress)
    record = {"dataset": str(folder.resolve()), "candidates": len(cases), "left_out": left_out,
              "selection": {**selection, "case_features": features}}
    with staged_folder(Path(out), overwrite, [folder]) as staging:
        save_atlases(atlases, staging, spacing_mm, region_margin_mm, record)
    return Path(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="choose representative whole CTs of a dataset and store them as atlases",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("-d", required=True, metavar="DATASET",
                       help="nnU-Net raw dataset of whole CTs: id, DatasetXXX_Name (in $nnUNet_raw) or a folder")
    build.add_argument("-o", required=True, metavar="ATLAS_DIR", help="atlas folder to write")
    build.add_argument("-n", type=int, default=DEFAULT_COUNT, help=f"number of atlases (default {DEFAULT_COUNT})")
    build.add_argument("--spacing", type=float, default=DEFAULT_SPACING_MM,
                       help=f"isotropic atlas voxel size, mm (default {DEFAULT_SPACING_MM:g})")
    build.add_argument("--region-margin", type=float, default=DEFAULT_REGION_MARGIN_MM,
                       help=f"CT kept around the kidneys, mm (default {DEFAULT_REGION_MARGIN_MM:g})")
    build.add_argument("-np", type=int, default=1, help="worker processes (default 1)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing atlas folder")
    build.add_argument("--disable_progress_bar", action="store_true")


def run(args: argparse.Namespace) -> int:
    try:
        out = build_atlases(args.d, args.o, args.n, args.spacing, args.region_margin, args.np, args.overwrite,
                            not args.disable_progress_bar)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise SystemExit(f"nnunet_ppm atlas build: {error}")
    description = json.loads((out / "atlases.json").read_text(encoding="utf-8"))
    names = [entry["name"] for entry in description["atlases"]]
    print(f"wrote {len(names)} atlases to {out}: {', '.join(names)}")
    for case, reason in sorted(description["left_out"].items()):
        print(f"  not a candidate: {case}: {reason}")
    return 0
