"""Which voxel values are kidney, tumor and cyst, and the structures evaluated from them.

Structures (KiTS naming where KiTS has one):

- ``kidney``: the kidney label alone (the paper's per-label Dice, Eq. 2);
- ``tumor``: the tumor label;
- ``kidney_tumor``: kidney + tumor (KiTS19's "kidney" composite);
- only where the labels have a cyst: ``kidney_masses`` (kidney + tumor + cyst)
  and ``masses`` (tumor + cyst), the KiTS21/23 hierarchical regions; their
  "tumor" region is ``tumor`` above.

The values come from the dataset's ``dataset.json``: plain labels
(``{"background": 0, "kidney": 1, "tumor": 2, "cyst": 3}``) or nnU-Net's region
form as in its KiTS23 conversion (``{"kidney": [1, 2, 3], "masses": [2, 3],
"tumor": 2}``). Without a dataset.json the KiTS19 numbering (1 kidney, 2 tumor)
is assumed.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, Mapping, Optional, Tuple, Union

TUMOR_NAMES = ("tumor", "tumour")
STRUCTURE_TITLES = {"kidney": "kidney", "tumor": "tumor", "kidney_tumor": "kidney+tumor",
                    "kidney_masses": "kidney+masses", "masses": "masses"}


@dataclass(frozen=True)
class LabelScheme:
    """Voxel values of kidney, tumor and (optionally) cyst, plus any other values the label maps may hold."""

    kidney: int = 1
    tumor: int = 2
    cyst: Optional[int] = None
    other: FrozenSet[int] = frozenset()

    @property
    def allowed_values(self) -> FrozenSet[int]:
        """Every voxel value a label map may contain (background 0 included)."""
        values = {0, self.kidney, self.tumor} | set(self.other)
        if self.cyst is not None:
            values.add(self.cyst)
        return frozenset(values)

    def structures(self) -> Dict[str, Tuple[int, ...]]:
        """Structure name -> the voxel values that make it up, in reporting order."""
        structures = {"kidney": (self.kidney,), "tumor": (self.tumor,), "kidney_tumor": (self.kidney, self.tumor)}
        if self.cyst is not None:
            structures["kidney_masses"] = (self.kidney, self.tumor, self.cyst)
            structures["masses"] = (self.tumor, self.cyst)
        return structures


def scheme_from_labels(labels: Mapping[str, Union[int, list, tuple]], source: str = "dataset.json") -> LabelScheme:
    """Read a :class:`LabelScheme` from the ``labels`` entry of an nnU-Net dataset.json.

    Args:
        labels: name -> value (plain labels) or name -> list of values (nnU-Net regions).
        source: where the labels came from, for error messages.
    """
    by_name = {name.lower(): value for name, value in labels.items()}
    tumor_name = next((name for name in TUMOR_NAMES if name in by_name), None)
    if "kidney" not in by_name or tumor_name is None:
        raise ValueError(f"{source}: labels {dict(labels)} have no 'kidney' and 'tumor' entries; "
                         f"evaluation needs both (names are matched case-insensitively)")
    if all(isinstance(value, int) for value in by_name.values()):
        named = {by_name["kidney"], by_name[tumor_name], by_name.get("cyst")}
        other = frozenset(v for v in by_name.values() if v not in named and v != 0)
        return LabelScheme(kidney=by_name["kidney"], tumor=by_name[tumor_name], cyst=by_name.get("cyst"), other=other)
    return _scheme_from_regions(by_name, tumor_name, source)


def _scheme_from_regions(by_name: Dict[str, Union[int, list]], tumor_name: str, source: str) -> LabelScheme:
    """nnU-Net region labels (KiTS23 style): kidney = all, masses = tumor + cyst, tumor."""
    def values(name: str) -> FrozenSet[int]:
        value = by_name.get(name, ())
        return frozenset([value] if isinstance(value, int) else value)

    kidney_region, masses_region, tumor_region = values("kidney"), values("masses"), values(tumor_name)
    kidney_only = kidney_region - masses_region - tumor_region
    cyst = masses_region - tumor_region
    if len(tumor_region) != 1 or len(kidney_only) != 1 or len(cyst) > 1 or not masses_region <= kidney_region:
        raise ValueError(f"{source}: region labels {by_name} cannot be read as kidney/masses/tumor regions "
                         f"(expected e.g. kidney=[1, 2, 3], masses=[2, 3], tumor=2)")
    return LabelScheme(kidney=next(iter(kidney_only)), tumor=next(iter(tumor_region)),
                       cyst=next(iter(cyst)) if cyst else None)


def load_label_scheme(dataset_json: Optional[Path]) -> LabelScheme:
    """The scheme of a dataset.json file, or KiTS19's (1 kidney, 2 tumor) when ``dataset_json`` is None."""
    if dataset_json is None:
        return LabelScheme()
    with open(dataset_json, encoding="utf-8") as handle:
        labels = json.load(handle).get("labels")
    if not labels:
        raise ValueError(f"{dataset_json}: no 'labels' entry")
    return scheme_from_labels(labels, source=str(dataset_json))
