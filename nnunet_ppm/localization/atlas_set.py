"""Low-resolution atlases: a CT's kidney region with its kidneys labelled by side, and the folder that holds them.

An atlas folder (written by ``nnunet_ppm atlas build``)::

    ATLAS_DIR/atlases.json            spacing, how the atlases were chosen, one entry per atlas
    ATLAS_DIR/<case>_ct.nii.gz        the CT in HU (int16) at `spacing_mm` isotropic, cropped to the kidneys
                                      plus `region_margin_mm` on every side (the "kidney region")
    ATLAS_DIR/<case>_sides.nii.gz     the same grid: 0 background, 1 right kidney, 2 left kidney
                                      (kidney, tumor and cyst together)

Each entry of atlases.json also records the physical centre of the atlas's
body (all voxels above -500 HU of the whole CT), which starts registration.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np
import SimpleITK as sitk

from nnunet_ppm.atomic_io import write_text_atomic
from nnunet_ppm.dataset_conversion.roi import kidney_sides
from nnunet_ppm.localization.low_resolution import (body_centre, registration_intensities, resample_ct,
                                                    resample_mask)

PathLike = Union[str, Path]
ATLAS_JSON = "atlases.json"
FORMAT_VERSION = 1
SIDE_CODES = {"right": 1, "left": 2}


@dataclass
class Atlas:
    """One atlas, ready for registration.

    Attributes:
        name: the case it was made from.
        ct: its kidney region in HU (float32), `spacing_mm` isotropic.
        sides: uint8 image on the same grid, SIDE_CODES per kidney.
        body_centre: physical centre (mm) of the whole CT's body.
    """

    name: str
    ct: sitk.Image
    sides: sitk.Image
    body_centre: np.ndarray
    _registration_image: sitk.Image = field(default=None, init=False, repr=False)

    @property
    def registration_image(self) -> sitk.Image:
        """The kidney region as registration sees it (:func:`registration_intensities`)."""
        if self._registration_image is None:
            self._registration_image = registration_intensities(self.ct)
        return self._registration_image

    @property
    def kidney_centre(self) -> np.ndarray:
        """Physical centre (mm) of both kidneys' voxels."""
        voxels = np.argwhere(sitk.GetArrayViewFromImage(self.sides) > 0)
        return np.asarray(self.sides.TransformContinuousIndexToPhysicalPoint(voxels.mean(axis=0)[::-1].tolist()))


def side_label_map(label: sitk.Image) -> sitk.Image:
    """The label map's kidneys (kidney + tumor + cyst) coded by side (SIDE_CODES), full resolution.

    Kidneys are told apart exactly as ROI conversion does
    (:func:`~nnunet_ppm.dataset_conversion.roi.kidney_sides`).
    """
    kidneys_map, sides = kidney_sides(label)
    codes = np.zeros(len(sides) + 1, np.uint8)
    for index, side in enumerate(sides):
        codes[index + 1] = SIDE_CODES[side]
    coded = sitk.GetImageFromArray(codes[kidneys_map])
    coded.CopyInformation(label)
    return coded


def make_atlas(name: str, ct: sitk.Image, label: sitk.Image, spacing_mm: float, region_margin_mm: float) -> Atlas:
    """Resample a CT and its label map to `spacing_mm` and crop both to the kidneys plus `region_margin_mm`.

    Raises ValueError unless the label map holds a right and a left kidney.
    """
    sides_full = side_label_map(label)
    found = set(np.unique(sitk.GetArrayViewFromImage(sides_full)).tolist()) - {0}
    if found != set(SIDE_CODES.values()):
        names = [side for side, code in SIDE_CODES.items() if code in found]
        raise ValueError(f"{name}: an atlas needs both kidneys, its label map has {names or 'none'}")
    low_ct = resample_ct(ct, spacing_mm)
    coded = np.zeros(sitk.GetArrayViewFromImage(low_ct).shape, np.uint8)
    for code in SIDE_CODES.values():  # each kidney resampled on its own, so neither swallows the other
        # a copy: a view of the temporary resampled image would outlive it (a segfault, seen on 5 mm CTs)
        kidney = sitk.GetArrayFromImage(resample_mask(sides_full == code, spacing_mm)) > 0
        coded[kidney & (coded == 0)] = code
    voxels = np.argwhere(coded > 0)
    if len(voxels) == 0:
        raise ValueError(f"{name}: the kidneys vanish at {spacing_mm:g} mm; use a finer atlas spacing")
    sides = sitk.GetImageFromArray(coded)
    sides.CopyInformation(low_ct)
    margin = int(np.ceil(region_margin_mm / spacing_mm))
    low = np.maximum(voxels.min(axis=0) - margin, 0)
    high = np.minimum(voxels.max(axis=0) + 1 + margin, coded.shape)
    size, index = (high - low)[::-1].tolist(), low[::-1].tolist()
    return Atlas(name, sitk.RegionOfInterest(low_ct, size, index), sitk.RegionOfInterest(sides, size, index),
                 body_centre(low_ct))


def save_atlases(atlases: Sequence[Atlas], folder: Path, spacing_mm: float, region_margin_mm: float,
                 record: dict) -> None:
    """Write atlas images and atlases.json (with `record`: where they came from, how they were chosen) to `folder`."""
    entries = []
    for atlas in atlases:
        ct_file, sides_file = f"{atlas.name}_ct.nii.gz", f"{atlas.name}_sides.nii.gz"
        sitk.WriteImage(sitk.Cast(sitk.Round(atlas.ct), sitk.sitkInt16), str(folder / ct_file), True)
        sitk.WriteImage(atlas.sides, str(folder / sides_file), True)
        entries.append({"name": atlas.name, "ct": ct_file, "sides": sides_file,
                        "body_centre_mm": [round(float(v), 3) for v in atlas.body_centre]})
    description = {"format": FORMAT_VERSION, "spacing_mm": spacing_mm, "region_margin_mm": region_margin_mm,
                   "side_codes": SIDE_CODES, **record, "atlases": entries}
    write_text_atomic(folder / ATLAS_JSON, json.dumps(description, indent=1) + "\n")


@dataclass
class AtlasSet:
    """The atlases of an atlas folder and its description (atlases.json)."""

    folder: Path
    description: Dict
    atlases: List[Atlas]

    @property
    def spacing_mm(self) -> float:
        return float(self.description["spacing_mm"])


def load_atlases(folder: PathLike) -> AtlasSet:
    """Read an atlas folder written by ``nnunet_ppm atlas build``."""
    folder = Path(folder)
    description_file = folder / ATLAS_JSON
    if not description_file.is_file():
        raise FileNotFoundError(f"{description_file} not found: make an atlas folder with `nnunet_ppm atlas build`")
    description = json.loads(description_file.read_text(encoding="utf-8"))
    if description.get("format") != FORMAT_VERSION:
        raise ValueError(f"{description_file}: atlas format {description.get('format')!r}, expected {FORMAT_VERSION}")
    atlases = []
    for entry in description["atlases"]:
        ct = sitk.Cast(sitk.ReadImage(str(folder / entry["ct"])), sitk.sitkFloat32)
        sides = sitk.Cast(sitk.ReadImage(str(folder / entry["sides"])), sitk.sitkUInt8)
        atlases.append(Atlas(entry["name"], ct, sides, np.asarray(entry["body_centre_mm"], dtype=float)))
    if not atlases:
        raise ValueError(f"{description_file} lists no atlas")
    return AtlasSet(folder, description, atlases)
