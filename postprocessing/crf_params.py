"""Parameters of the 3D dense CRF, with their defaults, and their JSON form.

The CRF (Kraehenbuehl & Koltun, NIPS 2011) combines the network's softmax
probabilities (unary term, -log p) with two Potts pairwise kernels:

* smoothness: ``w_s * exp(-|p_i - p_j|^2 / (2 s_s^2))`` - nearby voxels prefer
  the same label (removes speckle, fills small holes);
* appearance: ``w_a * exp(-|p_i - p_j|^2 / (2 s_a^2) - (I_i - I_j)^2 / (2 s_I^2))``
  - nearby voxels of similar CT value prefer the same label (snaps borders to edges).

Positions ``p`` are in millimetres (voxel index times the case's spacing), so
the widths mean the same on every scanner; intensities ``I`` are in HU,
clipped to ``hu_window`` first (the paper's -200..500 HU window) so that bone
and air do not inflate the filtering lattice. ``tune-crf`` searches these values
on validation cases and writes them as JSON for ``--crf-params``.
"""
import dataclasses
import json
from dataclasses import dataclass
from typing import Tuple

from nnunet_ppm.atomic_io import atomic_output


@dataclass(frozen=True)
class CRFParams:
    """Dense CRF settings. Widths in mm and HU, weights dimensionless.

    Attributes:
        smoothness_weight: weight w_s of the smoothness kernel.
        smoothness_sigma_mm: spatial width s_s of the smoothness kernel.
        appearance_weight: weight w_a of the appearance (bilateral) kernel.
        appearance_sigma_mm: spatial width s_a of the appearance kernel.
        appearance_sigma_hu: intensity width s_I of the appearance kernel.
        iterations: mean-field iterations.
        hu_window: CT values are clipped to this window before the appearance kernel.
        margin_mm: the CRF runs inside the bounding box of the predicted foreground grown by this margin.
        max_block_voxels: larger boxes are processed in overlapping blocks of at most this many voxels
            (overlap ``margin_mm``), which bounds memory (pydensecrf needs about 300 bytes per voxel).
        unary_floor: probabilities are clipped below at this value before ``-log``.
    """
    smoothness_weight: float = 3.0
    smoothness_sigma_mm: float = 3.0
    appearance_weight: float = 5.0
    appearance_sigma_mm: float = 10.0
    appearance_sigma_hu: float = 20.0
    iterations: int = 5
    hu_window: Tuple[float, float] = (-200.0, 500.0)
    margin_mm: float = 10.0
    max_block_voxels: int = 8_000_000
    unary_floor: float = 1e-8

    def replace(self, **changes) -> "CRFParams":
        """A copy with some fields changed (unknown names are an error)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "CRF parameters") -> "CRFParams":
        """Defaults overridden by ``values``; an unknown key is an error naming ``source``."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown CRF parameter(s) {unknown}; known are {sorted(known)}")
        values = dict(values)
        if "hu_window" in values:
            values["hu_window"] = tuple(float(v) for v in values["hu_window"])
        return cls(**values)

    @classmethod
    def from_json(cls, json_file: str) -> "CRFParams":
        """Read parameters written by ``to_json`` or ``nnunet_ppm tune-crf`` (missing keys keep their default)."""
        with open(json_file, encoding="utf-8") as f:
            values = json.load(f)
        return cls.from_dict(values.get("crf_params", values), source=json_file)

    def to_json(self, json_file: str, **extra) -> None:
        """Write ``{"crf_params": ..., **extra}`` to ``json_file`` atomically."""
        with atomic_output(json_file) as temporary, open(temporary, "w", encoding="utf-8") as f:
            json.dump({"crf_params": self.to_dict(), **extra}, f, indent=2)
