"""Label values: what the sources hold and what the nnU-Net datasets get.

Every layout uses 0 background, 1 kidney, 2 tumor; KiTS21 and KiTS23 add 3 cyst.
The paper has three classes, so cysts are merged into kidney unless the
dataset keeps them as a fourth label.
"""
from typing import Dict

import numpy as np

BACKGROUND, KIDNEY, TUMOR, CYST = 0, 1, 2, 3


def dataset_labels(keep_cyst: bool) -> Dict[str, int]:
    """The `labels` entry of dataset.json."""
    labels = {"background": BACKGROUND, "kidney": KIDNEY, "tumor": TUMOR}
    if keep_cyst:
        labels["cyst"] = CYST
    return labels


def to_dataset_labels(label: np.ndarray, keep_cyst: bool) -> np.ndarray:
    """Source label values (0-3) as a uint8 map of the dataset's labels: cyst becomes kidney unless `keep_cyst`."""
    out = label.astype(np.uint8)
    if not keep_cyst:
        out[out == CYST] = KIDNEY
    return out
