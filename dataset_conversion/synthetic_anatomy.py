"""Geometry of a synthetic abdomen: where body, spine, vessels, organs and kidneys sit.

Everything is in the canonical frame of :mod:`~nnunet_ppm.dataset_conversion.orientation`:
arrays indexed (z, y, x) with z towards the head, y towards the back, x towards
the patient's left, and positions in mm from the first voxel. An
:class:`Anatomy` is either sampled from scratch (:func:`sample_anatomy`, then
:func:`kidney_label_map` draws kidneys, tumors and cysts) or fitted around the
kidneys of a real label map (:func:`fit_anatomy`). Sizes follow adult anatomy:
kidneys about 11 x 6 x 4.5 cm beside the spine, the right one lower, the liver
on the right above it, the spleen on the left.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnunet_ppm.dataset_conversion.contrast_phases import ARTERIAL_HU
from nnunet_ppm.dataset_conversion.labels import CYST, KIDNEY, TUMOR
from nnunet_ppm.dataset_conversion.random_fields import smooth_noise

Grid = Tuple[Tuple[slice, ...], Tuple[np.ndarray, np.ndarray, np.ndarray]]


def region(shape: Sequence[int], spacing: Sequence[float], centre: Sequence[float],
           half_extent: Sequence[float]) -> Optional[Grid]:
    """Voxels within `half_extent` mm of `centre`: (slices, open-grid z, y, x coordinates in mm)."""
    slices, coordinates = [], []
    for axis, (n, s, c, h) in enumerate(zip(shape, spacing, centre, half_extent)):
        lo, hi = max(int(np.floor((c - h) / s)), 0), min(int(np.ceil((c + h) / s)) + 1, n)
        if lo >= hi:
            return None
        slices.append(slice(lo, hi))
        view = [1, 1, 1]
        view[axis] = hi - lo
        coordinates.append((np.arange(lo, hi, dtype=np.float32) * s).reshape(view))
    return tuple(slices), tuple(coordinates)


@dataclass
class Ellipsoid:
    """An ellipsoid: centre (z, y, x) mm, semi-axes (mm) along the rows of `axes` (unit vectors in z, y, x)."""

    centre: np.ndarray
    radii: np.ndarray
    axes: np.ndarray

    def radius_at(self, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Normalised radius at the (broadcastable) mm coordinates: < 1 inside, 1 on the surface."""
        z, y, x = z - self.centre[0], y - self.centre[1], x - self.centre[2]
        return np.sqrt(sum(((z * a[0] + y * a[1] + x * a[2]) / r) ** 2 for a, r in zip(self.axes, self.radii)))

    def normalised_radius(self, shape: Sequence[int], spacing: Sequence[float]):
        """(slices, normalised radius) over the ellipsoid's bounding box, or None when it misses the volume."""
        grid = region(shape, spacing, self.centre, [float(max(self.radii))] * 3)
        return None if grid is None else (grid[0], self.radius_at(*grid[1]))

    def surface_distance(self, direction: np.ndarray) -> float:
        """Distance from the centre to the surface along the unit vector `direction`."""
        return float(1.0 / np.sqrt(sum((np.dot(direction, a) / r) ** 2 for a, r in zip(self.axes, self.radii))))


def rotation_about(axis: int, angle: float) -> np.ndarray:
    """Rotation matrix (z, y, x coordinates) about coordinate `axis` by `angle` radians."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [a for a in range(3) if a != axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    return vector / np.linalg.norm(vector)


@dataclass
class KidneyPlacement:
    """A kidney: its centre (z, y, x) mm, side, and for generated kidneys its ellipsoid and hilum direction."""

    centre: np.ndarray
    side: str
    shape: Optional[Ellipsoid] = None
    hilum: Optional[np.ndarray] = None


@dataclass
class Anatomy:
    """Everything around the kidneys, plus per-case tissue values (HU)."""

    body_centre: Tuple[float, float]  # (y, x) mm
    body_radii: Tuple[float, float]  # (y, x) semi-axes
    body_exponent: float  # 2 = ellipse, larger = boxier
    fat_mm: float  # subcutaneous fat
    wall_mm: float  # abdominal wall muscle
    spine_x: float
    vertebra_y: float  # vertebral body centre
    vertebra_radii: Tuple[float, float]
    vertebra_height: float
    disc_mm: float
    disc_phase: float
    aorta: Tuple[float, float, float]  # y, x, radius
    ivc: Tuple[float, float, float, float]  # y, x, radius y, radius x
    kidneys: List[KidneyPlacement]
    liver: Ellipsoid
    spleen: Ellipsoid
    tissue: Dict[str, float]
    phase: str = "arterial"  # contrast phase (:mod:`.contrast_phases`); tumor values follow it when drawn


def sample_tissues(rng: np.random.Generator) -> Dict[str, float]:
    """Arterial-phase HU of each tissue, and noise and blur, for one case."""
    u = rng.uniform
    hu = ARTERIAL_HU
    cortex = u(*hu["cortex"])
    return {
        "air": -1000.0, "skin": u(20, 40), "fat": u(-110, -85), "muscle": u(40, 60), "bowel": u(*hu["bowel"]),
        "gas": u(-950, -800), "liver": u(*hu["liver"]), "spleen": u(*hu["spleen"]), "cortex": cortex,
        "medulla": max(cortex - u(50, 90), 80.0), "sinus_fat": u(-100, -70), "aorta": u(*hu["aorta"]),
        "ivc": u(*hu["ivc"]), "renal_vein": u(*hu["renal_vein"]), "cancellous": u(400, 500),
        "cortical_bone": u(750, 1000),
        "rib": u(450, 750), "disc": u(80, 100), "csf": u(5, 15), "cyst": u(0, 20),
        "noise_sigma": u(10, 25), "blur_in_plane": u(0.5, 0.8), "blur_slices": u(0.35, 0.6),
    }


def _organs_and_vessels(rng: np.random.Generator, body_radii, spine_x: float, vertebra_y: float,
                        vertebra_radii, kidneys: List[KidneyPlacement]):
    """Aorta, IVC, liver and spleen placed relative to the spine and kidneys."""
    u = rng.uniform
    by_side = {k.side: k.centre for k in kidneys}

    def mirrored(centre: np.ndarray, dz: float) -> np.ndarray:  # where a missing kidney would sit
        return np.array([centre[0] + dz, centre[1], 2 * spine_x - centre[2]])

    right = by_side["right"] if "right" in by_side else mirrored(by_side["left"], -15)
    left = by_side["left"] if "left" in by_side else mirrored(right, 15)
    (ry, rx), (b, a) = vertebra_radii, body_radii
    aorta_r = u(9, 12)
    aorta = (vertebra_y - ry - aorta_r - u(1, 4), spine_x + u(5, 15), aorta_r)
    ivc = (vertebra_y - ry - u(8, 15), spine_x - u(20, 30), u(8, 11), u(12, 16))
    liver = Ellipsoid(np.array([right[0] + u(60, 80), right[1] - u(45, 70), spine_x - u(0.3, 0.4) * a]),
                      np.array([u(75, 95), u(0.6, 0.75) * b, u(0.55, 0.65) * a]), rotation_about(0, u(-0.25, 0.25)))
    spleen = Ellipsoid(np.array([left[0] + u(30, 50), left[1] - u(5, 20), left[2] + u(35, 50)]),
                       np.array([u(45, 60), u(40, 55), u(15, 22)]), rotation_about(0, u(0.5, 0.9)))
    return aorta, ivc, liver, spleen


def _generated_kidney(rng: np.random.Generator, centre: np.ndarray, side: str) -> KidneyPlacement:
    """A bean-shaped kidney: long axis tilted (upper pole medial and posterior), hilum facing antero-medially."""
    u = rng.uniform
    lateral = 1.0 if side == "left" else -1.0  # +x is the patient's left
    medial = np.array([0.0, 0.0, -lateral])
    long_axis = _unit([1.0, np.sin(u(0.1, 0.25)), -lateral * np.sin(u(0.15, 0.3))])
    hilum_angle = u(0.3, 0.7)
    hilum = medial * np.cos(hilum_angle) + np.array([0.0, -1.0, 0.0]) * np.sin(hilum_angle)
    hilum = _unit(hilum - np.dot(hilum, long_axis) * long_axis)
    width_axis = -hilum  # away from the hilum
    thickness_axis = np.cross(long_axis, width_axis)
    shape = Ellipsoid(centre, np.array([u(48, 60), u(24, 30), u(19, 25)]), np.stack([long_axis, width_axis, thickness_axis]))
    return KidneyPlacement(centre, side, shape, hilum)


def sample_anatomy(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float],
                   body_radii: Tuple[float, float]) -> Anatomy:
    """A random adult abdomen (semi-axes `body_radii` (y, x) mm) centred in the volume, with two generated kidneys."""
    u = rng.uniform
    extent = np.asarray(shape) * np.asarray(spacing)
    b, a = body_radii
    centre = (extent[1] / 2 + u(-0.03, 0.03) * extent[1], extent[2] / 2 + u(-0.03, 0.03) * extent[2])
    spine_x = centre[1] + u(-5, 5)
    vertebra_y = centre[0] + b - u(70, 90)
    left_z = extent[0] * u(0.47, 0.57)
    kidneys = [_generated_kidney(rng, np.array([left_z - u(5, 25) if side == "right" else left_z,
                                                vertebra_y + u(5, 20),
                                                spine_x + (1 if side == "left" else -1) * u(60, 75)]), side)
               for side in ("right", "left")]
    return _finish_anatomy(rng, centre, (b, a), spine_x, vertebra_y, kidneys)


def fit_anatomy(rng: np.random.Generator, kidneys: List[KidneyPlacement], x_range: Tuple[float, float]) -> Anatomy:
    """An abdomen around given kidneys (painting onto real labels); `x_range`: x (mm) of the outermost kidney voxels."""
    u = rng.uniform
    if len(kidneys) == 2:
        spine_x = float(np.mean([k.centre[2] for k in kidneys]))
    else:
        spine_x = kidneys[0].centre[2] - (1 if kidneys[0].side == "left" else -1) * u(60, 70)
    vertebra_y = float(np.mean([k.centre[1] for k in kidneys])) - u(5, 15)
    back = vertebra_y + u(70, 90)
    a = max(max(abs(x - spine_x) for x in x_range) + u(40, 60), u(140, 170))
    b = a * u(0.66, 0.8)
    return _finish_anatomy(rng, (back - b, spine_x), (b, a), spine_x, vertebra_y, kidneys)


def _finish_anatomy(rng, body_centre, body_radii, spine_x, vertebra_y, kidneys) -> Anatomy:
    u = rng.uniform
    vertebra_radii = (u(14, 18), u(19, 24))
    aorta, ivc, liver, spleen = _organs_and_vessels(rng, body_radii, spine_x, vertebra_y, vertebra_radii, kidneys)
    return Anatomy(body_centre=body_centre, body_radii=body_radii, body_exponent=u(2.0, 2.6), fat_mm=u(10, 35),
                   wall_mm=u(8, 15), spine_x=spine_x, vertebra_y=vertebra_y, vertebra_radii=vertebra_radii,
                   vertebra_height=u(30, 38), disc_mm=u(7, 10), disc_phase=u(0, 30), aorta=aorta, ivc=ivc,
                   kidneys=kidneys, liver=liver, spleen=spleen, tissue=sample_tissues(rng))


def _random_axes(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return q


def _lesion(rng: np.random.Generator, kidney: KidneyPlacement, radius: float, depth_range: Tuple[float, float]) -> Ellipsoid:
    """A roughly round lesion on the kidney surface away from the hilum; depth_range in lesion radii
    (negative: centre inside the kidney, positive: outside, i.e. exophytic)."""
    for _ in range(50):
        direction = _unit(rng.standard_normal(3))
        if np.dot(direction, kidney.hilum) < 0.2:
            break
    surface = kidney.shape.surface_distance(direction)
    centre = kidney.centre + direction * (surface + rng.uniform(*depth_range) * radius)
    return Ellipsoid(centre, radius * rng.uniform(0.85, 1.15, 3), _random_axes(rng))


def _paint(label: np.ndarray, spacing, shape: Ellipsoid, value: int, rng: np.random.Generator,
           lobulation: float, keep: Sequence[int] = ()) -> None:
    """Set `value` inside `shape`, its surface made lumpy by `lobulation` (fraction of the radius)."""
    found = shape.normalised_radius(label.shape, spacing)
    if found is None:
        return
    slices, r = found
    target = label[slices]
    inside = r + lobulation * smooth_noise(rng, target.shape, spacing, 0.7 * float(min(shape.radii))) <= 1
    for kept in keep:
        inside &= target != kept
    target[inside] = value


def kidney_label_map(rng: np.random.Generator, anatomy: Anatomy, shape: Sequence[int], spacing: Sequence[float],
                     tumor_radius: Tuple[float, float]) -> np.ndarray:
    """Labels (0 bg, 1 kidney, 2 tumor, 3 cyst) of the generated kidneys of `anatomy`: bean-shaped kidneys
    with a medial hilum notch, 1-2 tumors on one kidney (sometimes also the other), now and then a cyst."""
    label = np.zeros(shape, np.uint8)
    for kidney in anatomy.kidneys:
        grid = region(shape, spacing, kidney.centre, [float(max(kidney.shape.radii))] * 3)
        if grid is None:
            continue
        slices, (z, y, x) = grid
        sinus = Ellipsoid(kidney.centre + kidney.hilum * 0.55 * kidney.shape.radii[1],
                          kidney.shape.radii * np.array([0.5, 0.45, 0.45]), kidney.shape.axes)
        towards_hilum = sum((c - kidney.centre[i]) * kidney.hilum[i] for i, c in enumerate((z, y, x)))
        notch = (sinus.radius_at(z, y, x) <= 1) & (towards_hilum > 0.6 * kidney.shape.radii[1])
        label[slices][(kidney.shape.radius_at(z, y, x) <= 1) & ~notch] = KIDNEY
    with_tumor = [int(rng.integers(2))]
    if rng.random() < 0.35:
        with_tumor.append(1 - with_tumor[0])
    for index in with_tumor:
        for _ in range(1 if rng.random() < 0.85 else 2):
            radius = rng.uniform(*tumor_radius)
            _paint(label, spacing, _lesion(rng, anatomy.kidneys[index], radius, (-0.8, 0.5)), TUMOR, rng, 0.12)
    for kidney in anatomy.kidneys:
        if rng.random() < 0.3:
            cyst_radius = rng.uniform(max(tumor_radius[0] * 0.6, 2 * max(spacing[1:])), tumor_radius[0] * 1.5)
            _paint(label, spacing, _lesion(rng, kidney, cyst_radius, (-0.3, 0.6)), CYST, rng, 0.03, keep=(TUMOR,))
    return label
