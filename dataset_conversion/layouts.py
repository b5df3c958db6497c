"""Source layouts: where each case's CT and label map live, and which label values they hold.

``roi`` -- the paper's layout ("140-patient ROI layout"): one folder per patient,
    ``SRC/<patient>/image.<ext>`` (or ``image/``, a folder with one DICOM series)
    and ``SRC/<patient>/label.<ext>``; <ext> is any of IMAGE_FILE_ENDINGS; the
    patient folder name is the case id. Labels: 0 background, 1 kidney, 2 tumor.
``kits19`` -- ``SRC/case_XXXXX/imaging.nii.gz`` + ``segmentation.nii.gz``; SRC may
    also be the repository root holding ``data/``. Labels 0, 1 kidney, 2 tumor.
``kits21`` -- ``SRC/case_XXXXX/imaging.nii.gz`` + ``aggregated_MAJ_seg.nii.gz``
    (or the root holding ``data/``). Labels 0, 1 kidney, 2 tumor, 3 cyst.
``kits23`` -- ``SRC/case_XXXXX/imaging.nii.gz`` + ``segmentation.nii.gz`` (or the
    root holding ``dataset/``). Labels 0, 1 kidney, 2 tumor, 3 cyst.

The public KiTS label repositories hold labels without imaging; such cases are
reported and skipped. In the ``roi`` layout a missing file is an error.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from nnunet_ppm.dataset_conversion.image_files import IMAGE_FILE_ENDINGS
from nnunet_ppm.dataset_conversion.labels import BACKGROUND, CYST, KIDNEY, TUMOR


@dataclass(frozen=True)
class Layout:
    """How one kind of source folder is organised."""

    name: str
    image_name: str  # file name without ending
    label_name: str
    label_values: Tuple[int, ...]
    cases_subfolder: Optional[str]  # release folder that holds the case folders, if SRC is the release root
    case_prefix: str  # case folders start with this ('' = every folder)
    file_ending: Optional[str]  # fixed ending, or None for any of IMAGE_FILE_ENDINGS
    missing_file_is_error: bool  # False: cases without imaging or labels are reported and skipped

    @property
    def has_cyst(self) -> bool:
        return CYST in self.label_values


THREE_CLASSES = (BACKGROUND, KIDNEY, TUMOR)
FOUR_CLASSES = (BACKGROUND, KIDNEY, TUMOR, CYST)

LAYOUTS: Dict[str, Layout] = {
    "roi": Layout("roi", "image", "label", THREE_CLASSES, None, "", None, True),
    "kits19": Layout("kits19", "imaging", "segmentation", THREE_CLASSES, "data", "case_", ".nii.gz", False),
    "kits21": Layout("kits21", "imaging", "aggregated_MAJ_seg", FOUR_CLASSES, "data", "case_", ".nii.gz", False),
    "kits23": Layout("kits23", "imaging", "segmentation", FOUR_CLASSES, "dataset", "case_", ".nii.gz", False),
}


@dataclass(frozen=True)
class SourceCase:
    """One patient of a source folder: its id and the paths of its CT and label map."""

    case_id: str
    image: Path
    label: Path


@dataclass
class FoundCases:
    """What :func:`find_cases` found: usable cases, cases with problems, and cases skipped on purpose."""

    cases: List[SourceCase]
    problems: Dict[str, List[str]]
    skipped: Dict[str, str]


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def cases_folder(layout: Layout, src: Path) -> Path:
    """The folder holding the case folders: SRC itself, or SRC/<release subfolder> when SRC is a release root."""
    if layout.cases_subfolder and (src / layout.cases_subfolder).is_dir():
        return src / layout.cases_subfolder
    return src


def case_paths(layout: Layout, root: Path, case_id: str, ending: str = ".nii.gz") -> Tuple[Path, Path]:
    """Where a layout keeps the image and label of `case_id` under the release root `root` (used to write layouts)."""
    ending = layout.file_ending or ending
    folder = root / (layout.cases_subfolder or "") / case_id
    return folder / f"{layout.image_name}{ending}", folder / f"{layout.label_name}{ending}"


def _find_one(folder: Path, stem: str, endings: Tuple[str, ...], allow_dicom: bool) -> Tuple[Optional[Path], str]:
    """The single entry `stem<ending>` (or `stem/` DICOM folder) in `folder`, or None and why not."""
    matches = [folder / f"{stem}{ending}" for ending in endings if (folder / f"{stem}{ending}").is_file()]
    if allow_dicom and (folder / stem).is_dir():
        matches.append(folder / stem)
    if len(matches) == 1:
        return matches[0], ""
    expected = " or ".join(f"{stem}{ending}" for ending in endings) + (f" or a {stem}/ DICOM folder" if allow_dicom else "")
    if not matches:
        return None, f"missing {stem} file in {folder} (expected {expected})"
    return None, f"ambiguous {stem} in {folder}: found {', '.join(m.name for m in matches)}, keep one"


def find_cases(layout: Layout, src: Path) -> FoundCases:
    """List the cases of a source folder in `layout`, sorted by case id."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"source folder {src} does not exist")
    folder = cases_folder(layout, src)
    endings = (layout.file_ending,) if layout.file_ending else IMAGE_FILE_ENDINGS
    found = FoundCases([], {}, {})
    for case_folder in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not case_folder.name.startswith(layout.case_prefix):
            continue
        case_id = case_folder.name
        image, image_problem = _find_one(case_folder, layout.image_name, endings, allow_dicom=layout.name == "roi")
        label, label_problem = _find_one(case_folder, layout.label_name, endings, allow_dicom=False)
        problems = [p for p in (image_problem, label_problem) if p]
        ambiguous = any(p.startswith("ambiguous") for p in problems)
        if ambiguous or (problems and layout.missing_file_is_error):
            found.problems[case_id] = problems
        elif problems:  # KiTS releases hold labels-only and unlabelled cases
            missing = [what for what, path in (("imaging", image), ("segmentation", label)) if path is None]
            found.skipped[case_id] = f"no {' and no '.join(missing)}"
        else:
            found.cases.append(SourceCase(case_id, image, label))
    if not (found.cases or found.problems or found.skipped):
        hint = f"{layout.case_prefix}* " if layout.case_prefix else ""
        raise FileNotFoundError(f"no {hint}case folders found in {folder} (layout {layout.name}: see "
                                f"`nnunet_ppm convert {layout.name} -h`)")
    return found

