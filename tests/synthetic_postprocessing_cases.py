"""Synthetic kidney cases for the post-processing tests: truth, CT, blurred noisy probabilities, predict folders."""
import os
import pickle
from typing import Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from batchgenerators.utilities.file_and_folder_operations import save_json
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from scipy.ndimage import gaussian_filter

HU_BY_LABEL = (-80.0, 180.0, 90.0)  # fat, enhancing kidney, tumor (arterial phase)


def kidney_truth(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Ellipsoidal kidney (label 1) with a spherical tumor (label 2) on its surface, centred in the array."""
    z, y, x = np.meshgrid(*[(np.arange(n) - n / 2) * s for n, s in zip(shape, spacing)], indexing="ij")
    truth = np.zeros(shape, np.uint8)
    truth[(z / 28) ** 2 + (y / 18) ** 2 + (x / 14) ** 2 <= 1] = 1
    truth[(z - 8) ** 2 + (y - 10) ** 2 + (x - 6) ** 2 <= 9 ** 2] = 2
    return truth


def ct_of(truth: np.ndarray, seed: int = 0, noise_hu: float = 15.0) -> np.ndarray:
    """A CT in HU: one mean value per label plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    return (np.asarray(HU_BY_LABEL, np.float32)[truth] + rng.normal(0, noise_hu, truth.shape)).astype(np.float32)


def blurred_noisy_probabilities(truth: np.ndarray, blur: float = 1.5, noise: float = 0.3, seed: int = 1,
                                n_classes: int = 3) -> np.ndarray:
    """The one-hot truth blurred (voxels) and noised, renormalised to probabilities (float32)."""
    rng = np.random.default_rng(seed)
    one_hot = np.stack([(truth == c).astype(np.float32) for c in range(n_classes)])
    probabilities = np.stack([gaussian_filter(o, blur) for o in one_hot]) + rng.normal(0, noise, one_hot.shape)
    probabilities = np.clip(probabilities, 1e-3, None)
    return (probabilities / probabilities.sum(0)).astype(np.float32)


def write_image(array: np.ndarray, spacing_zyx: Sequence[float], path: str) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    image.SetOrigin((10.0, -20.0, 30.0))
    sitk.WriteImage(image, path)


def write_predict_folder(folder: str, raw_folder: str, cases: dict, spacing_zyx: Sequence[float]) -> None:
    """Write what `nnUNetv2_predict --save_probabilities` leaves, for ``cases`` = {case_id: (ct, probabilities)}.

    Raw CTs go to ``raw_folder/CASE_0000.nii.gz``; the folder gets CASE.npz / CASE.pkl / CASE.nii.gz (argmax)
    with properties read back by nnU-Net's SimpleITKIO, plus dataset.json and plans.json.
    """
    os.makedirs(folder, exist_ok=True)
    os.makedirs(raw_folder, exist_ok=True)
    reader = SimpleITKIO()
    for case_id, (ct, probabilities) in cases.items():
        image_file = os.path.join(raw_folder, f"{case_id}_0000.nii.gz")
        write_image(ct, spacing_zyx, image_file)
        _, properties = reader.read_images([image_file])
        properties["shape_before_cropping"] = ct.shape
        np.savez_compressed(os.path.join(folder, case_id + ".npz"), probabilities=probabilities)
        with open(os.path.join(folder, case_id + ".pkl"), "wb") as f:
            pickle.dump(properties, f)
        reader.write_seg(probabilities.argmax(0).astype(np.uint8), os.path.join(folder, case_id + ".nii.gz"), properties)
    save_json({"channel_names": {"0": "CT"}, "labels": {"background": 0, "kidney": 1, "tumor": 2},
               "numTraining": 0, "file_ending": ".nii.gz"}, os.path.join(folder, "dataset.json"))
    save_json({"image_reader_writer": "SimpleITKIO", "plans_name": "synthetic", "configurations": {}},
              os.path.join(folder, "plans.json"))


def dice(reference: np.ndarray, prediction: np.ndarray, label: int) -> float:
    a, b = reference == label, prediction == label
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def small_case(shape: Tuple[int, int, int] = (32, 56, 48), spacing: Tuple[float, float, float] = (2.0, 0.8, 0.8),
               seed: int = 0):
    """(truth, ct, probabilities, spacing) of a small synthetic kidney case."""
    truth = kidney_truth(shape, spacing)
    return truth, ct_of(truth, seed), blurred_noisy_probabilities(truth, seed=seed + 1), spacing
