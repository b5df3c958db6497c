"""The paper's intensity handling (section III.B.1) and its expression in nnU-Net's CTNormalization.

The paper clips CT values to [-200, 500] HU, scales them to [0, 1] and subtracts
the mean of that scaled value over the training set:

    x' = (clip(x, -200, 500) + 200) / 700 - m

nnU-Net's CTNormalization computes ``(clip(x, p00_5, p99_5) - mean) / std`` from
the plans' ``foreground_intensity_properties_per_channel``. Writing
``p00_5 = -200``, ``p99_5 = 500``, ``std = 700`` and ``mean = -200 + 700 m`` makes
it exactly the paper's formula, so nnU-Net's own preprocessing and predictor
apply it unchanged.
"""
from multiprocessing import Pool
from typing import Dict, Sequence, Tuple

import numpy as np
from tqdm import tqdm

HU_WINDOW = (-200.0, 500.0)


def scale_to_unit(values: np.ndarray, window: Tuple[float, float] = HU_WINDOW) -> np.ndarray:
    """Clip to the HU window and scale it to [0, 1] (float64)."""
    lower, upper = window
    return (np.clip(values.astype(np.float64), lower, upper) - lower) / (upper - lower)


def ct_normalization_properties(mean_scaled: float, window: Tuple[float, float] = HU_WINDOW) -> Dict[str, float]:
    """CTNormalization intensity properties that compute ``scale_to_unit(x) - mean_scaled``."""
    lower, upper = window
    return {"percentile_00_5": lower, "percentile_99_5": upper,
            "mean": lower + (upper - lower) * mean_scaled, "std": upper - lower}


def _sum_and_count(job: Tuple[type, str, Tuple[float, float]]) -> Tuple[float, int]:
    reader_writer_class, image_file, window = job
    data, _ = reader_writer_class().read_images((image_file,))
    return float(scale_to_unit(data[0], window).sum()), int(data[0].size)


def mean_scaled_intensity(image_files: Sequence[str], reader_writer_class: type, channel: int = 0,
                          window: Tuple[float, float] = HU_WINDOW, num_processes: int = 2) -> float:
    """Mean of ``scale_to_unit`` over every voxel of every training image (the paper's dataset mean).

    `image_files` are the files of one channel, one per training case; they are read with
    nnU-Net's reader class of the dataset.
    """
    if not image_files:
        raise ValueError("mean_scaled_intensity: no training images given")
    jobs = [(reader_writer_class, f, window) for f in image_files]
    with Pool(max(num_processes, 1)) as pool:
        results = list(tqdm(pool.imap(_sum_and_count, jobs), total=len(jobs),
                            desc=f"dataset mean of channel {channel} in {list(window)} HU"))
    total, count = map(sum, zip(*results))
    return total / count
