"""Render an arterial-phase CT (HU) from a kidney label map and an :class:`~.synthetic_anatomy.Anatomy`.

Works in the canonical frame (z head-wards, y back-wards, x to the patient's
left; mm from the first voxel). Painting order, later over earlier: body
(skin, subcutaneous fat, abdominal wall) -> bowel and fat -> liver, spleen ->
perirenal fat -> psoas and back muscles -> spine, ribs -> aorta, IVC, renal
vessels -> kidneys from the label map (enhancing cortex, darker medullary
pyramids, fatty sinus) -> tumors (heterogeneous, overlapping the kidney's HU,
some with necrotic centres) and cysts. Then partial-volume blur and correlated
noise. The label map is only read.
"""
from typing import Sequence, Tuple

import cc3d
import numpy as np
from scipy import ndimage

from nnunet_ppm.dataset_conversion.contrast_phases import ARTERIAL_HU, phase_value
from nnunet_ppm.dataset_conversion.labels import CYST, KIDNEY, TUMOR
from nnunet_ppm.dataset_conversion.random_fields import smooth_noise
from nnunet_ppm.dataset_conversion.roi import kidney_map
from nnunet_ppm.dataset_conversion.synthetic_anatomy import Anatomy, Ellipsoid, region


def _body(hu: np.ndarray, spacing, anatomy: Anatomy) -> Tuple[np.ndarray, np.ndarray]:
    """Air, skin, subcutaneous fat and abdominal wall; returns the abdominal cavity and the depth under the skin (y, x)."""
    t = anatomy.tissue
    _, ny, nx = hu.shape
    y = np.arange(ny, dtype=np.float32)[:, None] * spacing[1] - anatomy.body_centre[0]
    x = np.arange(nx, dtype=np.float32)[None, :] * spacing[2] - anatomy.body_centre[1]
    p = anatomy.body_exponent
    body = (np.abs(y) / anatomy.body_radii[0]) ** p + (np.abs(x) / anatomy.body_radii[1]) ** p <= 1
    depth = ndimage.distance_transform_edt(body, sampling=spacing[1:])
    layers = np.full((ny, nx), t["air"], np.float32)
    layers[body] = t["fat"]
    layers[body & (depth < 2.0)] = t["skin"]
    wall = body & (depth >= anatomy.fat_mm) & (depth < anatomy.fat_mm + anatomy.wall_mm)
    layers[wall] = t["muscle"]
    hu[:] = layers
    return body & (depth >= anatomy.fat_mm + anatomy.wall_mm), depth


def _bowel(hu: np.ndarray, spacing, cavity: np.ndarray, rng, anatomy: Anatomy) -> None:
    rows, cols = np.flatnonzero(cavity.any(1)), np.flatnonzero(cavity.any(0))
    if rows.size == 0:
        return
    box = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    target = hu[box]
    loops = smooth_noise(rng, target.shape, spacing, 28.0)
    gas = smooth_noise(rng, target.shape, spacing, 12.0)
    inside = np.broadcast_to(cavity[box[1:]], target.shape)
    bowel = inside & (loops > 0.15)
    target[bowel] = anatomy.tissue["bowel"] + 8 * loops[bowel]
    target[bowel & (gas > 1.9)] = anatomy.tissue["gas"]


def _organ(hu, spacing, organ: Ellipsoid, value: float, texture: float, cavity, rng) -> None:
    found = organ.normalised_radius(hu.shape, spacing)
    if found is None:
        return
    slices, r = found
    target = hu[slices]
    wobble = smooth_noise(rng, target.shape, spacing, 35.0)
    inside = (r + 0.07 * wobble <= 1) & cavity[slices[1:]]
    target[inside] = value + texture * smooth_noise(rng, target.shape, spacing, 10.0)[inside]


def _perirenal_fat(hu, spacing, kidneys: np.ndarray, fat: float, rng) -> None:
    shell = rng.uniform(6, 15)
    for bounds in cc3d.statistics(kidneys)["bounding_boxes"][1:]:
        pad = [int(np.ceil(shell / s)) + 1 for s in spacing]
        slices = tuple(slice(max(b.start - p, 0), b.stop + p) for b, p in zip(bounds, pad))
        outside = ndimage.distance_transform_edt(kidneys[slices] == 0, sampling=spacing)
        thickness = shell * (1 + 0.5 * smooth_noise(rng, outside.shape, spacing, 20.0))
        hu[slices][(outside > 0) & (outside <= thickness)] = fat


def _ellipse_columns(hu, spacing, centre_yx, radii_yx, value, z_radius=None) -> None:
    """Paint a z-constant elliptic column; `z_radius` (per slice scale factor) lets it taper."""
    height = hu.shape[0] * spacing[0]
    grid = region(hu.shape, spacing, (height / 2, *centre_yx), (height, max(radii_yx) * 1.5, max(radii_yx) * 1.5))
    if grid is None:
        return
    slices, (z, y, x) = grid
    scale = 1.0 if z_radius is None else z_radius(z)
    inside = ((y - centre_yx[0]) / (radii_yx[0] * scale)) ** 2 + ((x - centre_yx[1]) / (radii_yx[1] * scale)) ** 2 <= 1
    hu[slices][np.broadcast_to(inside, hu[slices].shape)] = value


def _muscles(hu, spacing, anatomy: Anatomy, kidney_top: float, rng) -> None:
    t, (vy, vx) = anatomy.tissue, anatomy.vertebra_radii

    def taper(z: np.ndarray) -> np.ndarray:  # psoas: a slip at the upper kidneys, ~2.5 cm radius low down
        return np.clip((6 + 0.18 * (kidney_top - z)) / 24, 0.25, 1.0)

    for side in (-1, 1):
        psoas_x = anatomy.spine_x + side * (vx + rng.uniform(10, 16))
        _ellipse_columns(hu, spacing, (anatomy.vertebra_y + rng.uniform(-2, 6), psoas_x), (20, 24), t["muscle"], taper)
        back_centre = (anatomy.vertebra_y + vy + rng.uniform(28, 38), anatomy.spine_x + side * rng.uniform(26, 34))
        _ellipse_columns(hu, spacing, back_centre, (rng.uniform(20, 26), rng.uniform(22, 28)), t["muscle"])


def _spine(hu, spacing, anatomy: Anatomy) -> None:
    t = anatomy.tissue
    nz, ny, nx = hu.shape
    z = np.arange(nz) * spacing[0]
    y = np.arange(ny, dtype=np.float32)[:, None] * spacing[1] - anatomy.vertebra_y
    x = np.arange(nx, dtype=np.float32)[None, :] * spacing[2] - anatomy.spine_x
    (ry, rx), height = anatomy.vertebra_radii, anatomy.vertebra_height
    body_r = np.sqrt((y / ry) ** 2 + (x / rx) ** 2)
    vertebral_body = body_r <= 1
    canal_y = ry + 9.0
    canal_d = np.sqrt((y - canal_y) ** 2 + x ** 2)
    arch = (canal_d > 8) & (canal_d <= 14) & (y > ry * 0.6)
    spinous = ((y - canal_y - 24) / 14) ** 2 + (x / 4.5) ** 2 <= 1
    transverse = (np.abs(y - canal_y + 2) < 4.5) & (np.abs(x) >= 12) & (np.abs(x) <= 42)
    phase = (z - anatomy.disc_phase) % height
    in_disc, with_processes = phase < anatomy.disc_mm, (phase > 0.35 * height) & (phase < 0.65 * height)
    body_values = np.where(body_r[vertebral_body] > 1 - 2.0 / min(ry, rx), t["cortical_bone"], t["cancellous"])
    hu[:, vertebral_body] = np.where(in_disc[:, None], t["disc"], body_values[None, :])
    hu[:, arch | spinous] = t["rib"]
    hu[:, canal_d <= 8] = t["csf"]
    for index in np.flatnonzero(with_processes):
        hu[index][transverse] = t["rib"]


def _ribs(hu, spacing, anatomy: Anatomy, depth: np.ndarray, lowest_rib_z: float, rng) -> None:
    """Oblique rib cross-sections along the inner body wall, posterior and lateral, descending to the front."""
    nz, ny, nx = hu.shape
    inner = anatomy.fat_mm + anatomy.wall_mm
    y = np.arange(ny)[:, None] * spacing[1] - anatomy.body_centre[0]
    x = np.arange(nx)[None, :] * spacing[2] - anatomy.body_centre[1]
    angle = np.arctan2(np.abs(x), y)  # 0 at the back, pi at the front
    ring = (depth > inner - 4) & (depth < inner + 6) & (angle > 0.45) & (angle < 2.2)
    rows, cols = np.nonzero(ring)
    if rows.size == 0:
        return
    pitch, thickness, slope = rng.uniform(22, 28), rng.uniform(8, 11), rng.uniform(18, 28)
    z = np.arange(nz)[:, None] * spacing[0]
    along = z + slope * (angle[rows, cols][None, :] - 0.45) - lowest_rib_z
    rib = (along >= -thickness / 2) & ((along + thickness / 2) % pitch < thickness)
    hu[:, rows, cols] = np.where(rib, anatomy.tissue["rib"], hu[:, rows, cols])


def _tube(hu, spacing, start, end, radius, value) -> None:
    start, end = np.asarray(start, float), np.asarray(end, float)
    grid = region(hu.shape, spacing, (start + end) / 2, np.abs(end - start) / 2 + radius)
    if grid is None:
        return
    slices, coords = grid
    axis = end - start
    length2 = max(float(axis @ axis), 1e-6)
    offset = [c - s for c, s in zip(coords, start)]
    t = np.clip(sum(o * a for o, a in zip(offset, axis)) / length2, 0, 1)
    distance2 = sum((o - t * a) ** 2 for o, a in zip(offset, axis))
    hu[slices][distance2 <= radius ** 2] = value


def _vessels(hu, spacing, anatomy: Anatomy) -> None:
    t = anatomy.tissue
    ay, ax, ar = anatomy.aorta
    _ellipse_columns(hu, spacing, (ay, ax), (ar, ar), t["aorta"])
    iy, ix, iry, irx = anatomy.ivc
    _ellipse_columns(hu, spacing, (iy, ix), (iry, irx), t["ivc"])
    for kidney in anatomy.kidneys:
        z = kidney.centre[0]
        _tube(hu, spacing, (z + 8, ay, ax), kidney.centre, 3.0, t["aorta"])
        _tube(hu, spacing, (z, iy, ix), kidney.centre + np.array([-6.0, -6.0, 0.0]), 5.0, t["renal_vein"])


def _kidneys(hu, spacing, label: np.ndarray, kidneys: np.ndarray, anatomy: Anatomy, rng) -> None:
    """Cortex near the surface, medullary pyramids deeper, fatty sinus deepest towards the spine."""
    t = anatomy.tissue
    cortex_mm, sinus_fraction = rng.uniform(4, 7), rng.uniform(0.08, 0.15)
    for index, bounds in enumerate(cc3d.statistics(kidneys)["bounding_boxes"][1:], start=1):
        slices = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in bounds)
        whole = kidneys[slices] == index
        parenchyma = whole & (label[slices] == KIDNEY)
        if not parenchyma.any():
            continue
        depth = ndimage.distance_transform_edt(whole, sampling=spacing)
        x = (np.arange(slices[2].start, slices[2].stop) * spacing[2])[None, None, :]
        centre_x = float(np.mean(np.nonzero(whole)[2])) * spacing[2] + slices[2].start * spacing[2]
        medial = (x - centre_x) * np.sign(anatomy.spine_x - centre_x)
        score = depth + 0.5 * medial
        deep = parenchyma & (depth > cortex_mm + 2)
        sinus = deep & (score >= np.quantile(score[parenchyma], 1 - sinus_fraction)) if deep.any() else deep
        pyramids = smooth_noise(rng, whole.shape, spacing, 7.0)
        medulla = parenchyma & (depth > cortex_mm) & ~sinus & (pyramids > -0.4)
        texture = smooth_noise(rng, whole.shape, spacing, 4.0)
        values = np.where(medulla, t["medulla"], t["cortex"]) + 10 * texture
        values = np.where(sinus, np.where(pyramids > 1.3, t["aorta"], t["sinus_fat"]), values)
        hu[slices][parenchyma] = values[parenchyma]


def _lesions(hu, spacing, label: np.ndarray, anatomy: Anatomy, rng) -> None:
    """Tumors: hyper-, iso- or hypo-enhancing, textured, some necrotic; cysts: water."""
    hu[label == CYST] = anatomy.tissue["cyst"]
    tumors = cc3d.connected_components(label == TUMOR, connectivity=26)
    for index, bounds in enumerate(cc3d.statistics(tumors)["bounding_boxes"][1:], start=1):
        slices = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in bounds)
        inside = tumors[slices] == index
        kind = rng.choice(["hyper", "iso", "hypo"], p=[0.5, 0.3, 0.2])
        drawn = {k: rng.uniform(*ARTERIAL_HU[f"tumor_{k}"]) for k in ("hyper", "iso", "hypo")}  # all three, always
        base = phase_value(drawn[kind], f"tumor_{kind}", anatomy.phase)
        texture = smooth_noise(rng, inside.shape, spacing, rng.uniform(3, 6))
        values = base + rng.uniform(20, 45) * texture
        depth = ndimage.distance_transform_edt(inside, sampling=spacing)
        if rng.random() < 0.4 and depth.max() > 2 * max(spacing):
            necrotic = depth > rng.uniform(0.45, 0.65) * depth.max() + 2 * texture
            values = np.where(necrotic, rng.uniform(10, 40) + 5 * texture, values)
        hu[slices][inside] = values[inside]


def _blur_and_noise(hu: np.ndarray, anatomy: Anatomy, rng) -> np.ndarray:
    """Partial-volume blur and CT noise in one Gaussian pass (white noise scaled so the blurred noise has the wanted sigma)."""
    t = anatomy.tissue
    sigma = (t["blur_slices"], t["blur_in_plane"], t["blur_in_plane"])
    delta = np.zeros((15, 15, 15), np.float32)
    delta[7, 7, 7] = 1
    kernel_norm = float(np.sqrt((ndimage.gaussian_filter(delta, sigma) ** 2).sum()))
    hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(t["noise_sigma"] / kernel_norm)
    return ndimage.gaussian_filter(hu, sigma, output=np.float32)


def render_ct(label: np.ndarray, spacing: Sequence[float], anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """CT in HU (int16, -1024..3071) for a canonical label map (0 bg, 1 kidney, 2 tumor, 3 cyst)."""
    spacing = tuple(float(s) for s in spacing)
    hu = np.empty(label.shape, np.float32)
    cavity, depth = _body(hu, spacing, anatomy)
    _bowel(hu, spacing, cavity, rng, anatomy)
    _organ(hu, spacing, anatomy.liver, anatomy.tissue["liver"], 6.0, cavity, rng)
    _organ(hu, spacing, anatomy.spleen, anatomy.tissue["spleen"], 15.0, cavity, rng)
    kidneys, _ = kidney_map(label, spacing)
    _perirenal_fat(hu, spacing, kidneys, anatomy.tissue["fat"], rng)
    kidney_z = [k.centre[0] for k in anatomy.kidneys]
    _muscles(hu, spacing, anatomy, max(kidney_z) + 40, rng)
    _spine(hu, spacing, anatomy)
    _ribs(hu, spacing, anatomy, depth, float(np.mean(kidney_z)) - 15, rng)
    _vessels(hu, spacing, anatomy)
    _kidneys(hu, spacing, label, kidneys, anatomy, rng)
    _lesions(hu, spacing, label, anatomy, rng)
    hu = _blur_and_noise(hu, anatomy, rng)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
