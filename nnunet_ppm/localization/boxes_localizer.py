"""Kidney boxes given by the user, in the JSON that ``nnunet_ppm localize`` writes.

    {"cases": {"case_00001": {"kidneys": [
        {"side": "right", "kidney_box": [[z0, z1], [y0, y1], [x0, x1]]},
        {"side": "left",  "kidney_box": [[z0, z1], [y0, y1], [x0, x1]]}]}}}

Boxes are the kidneys' tight boxes in the CT's voxel indices (SimpleITK array
order, half-open, inside the image), as in :mod:`.localizer`; other keys
(``confidence``, ``seconds``, ``notes``, ``localizer``) are ignored, so the
output of one ``localize`` run can be checked, edited and fed back. A CT that
the file does not list has no kidney found.
"""
import json
from pathlib import Path
from typing import Dict, List, Tuple, Union

from nnunet_ppm.localization.localizer import SIDES, CtCase, KidneyLocalizer, LocatedKidney, check_box

PathLike = Union[str, Path]


def read_boxes(path: PathLike) -> Dict[str, List[dict]]:
    """{case: [{"side", "kidney_box"}, ...]} from a boxes file; raises ValueError naming what is malformed."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read kidney boxes from {path}: {error}") from error
    cases = content.get("cases") if isinstance(content, dict) else None
    if not isinstance(cases, dict):
        raise ValueError(f"{path}: expected {{\"cases\": {{CASE: {{\"kidneys\": [...]}}}}}}")
    boxes = {}
    for case, entry in cases.items():
        kidneys = entry.get("kidneys") if isinstance(entry, dict) else None
        if not isinstance(kidneys, list):
            raise ValueError(f"{path}: case {case}: expected {{\"kidneys\": [{{\"side\": ..., \"kidney_box\": ...}}]}}")
        sides = [k.get("side") if isinstance(k, dict) else None for k in kidneys]
        if any(side not in SIDES for side in sides) or len(set(sides)) != len(sides):
            raise ValueError(f"{path}: case {case}: sides {sides}; each kidney needs a side 'right' or 'left', once")
        if any("kidney_box" not in k for k in kidneys):
            raise ValueError(f"{path}: case {case}: every kidney needs a \"kidney_box\"")
        boxes[case] = kidneys
    return boxes


class BoxesLocalizer(KidneyLocalizer):
    """The kidneys listed for each CT in a boxes file."""

    name = "boxes"

    def __init__(self, path: PathLike, kidney_margin_mm: float = 0.0):
        super().__init__(kidney_margin_mm)
        self.path = Path(path)
        self.boxes = read_boxes(self.path)

    def settings(self) -> dict:
        return {"boxes": str(self.path)}

    def find(self, ct: CtCase) -> Tuple[List[LocatedKidney], List[str]]:
        if ct.case_id not in self.boxes:
            return [], [f"{ct.case_id} is not in {self.path}"]
        shape = ct.image.GetSize()[::-1]
        kidneys = []
        for entry in self.boxes[ct.case_id]:
            problem = check_box(entry["kidney_box"], shape)
            if problem:
                raise ValueError(f"{self.path}, {entry['side']} kidney: {problem}")
            box = tuple((int(start), int(stop)) for start, stop in entry["kidney_box"])
            kidneys.append(LocatedKidney(entry["side"], box))
        return sorted(kidneys, key=lambda k: SIDES.index(k.side)), []
