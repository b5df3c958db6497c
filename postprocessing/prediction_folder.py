"""Read what `nnUNetv2_predict --save_probabilities` wrote, and find each case's raw images.

Such a folder holds, per case, ``CASE.npz`` (key ``probabilities``, shape
(classes, *raw image array shape)) and ``CASE.pkl`` (nnU-Net's properties),
plus the ``dataset.json`` and ``plans.json`` that name the file ending and
the image reader/writer.
"""
import os
import pickle
import zipfile
from typing import List, Tuple

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import isfile, join, load_json, load_pickle, subfiles
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager


# probabilities saved in float16 (or resampled) sum to one within this
PROBABILITY_TOLERANCE = 1e-2


class PredictionFolder:
    """An output folder of ``nnUNetv2_predict --save_probabilities`` (read-only)."""

    def __init__(self, folder: str):
        self.folder = folder
        missing = [name for name in ("dataset.json", "plans.json") if not isfile(join(folder, name))]
        if missing:
            raise FileNotFoundError(f"{folder} lacks {missing}: expected a folder written by nnUNetv2_predict")
        self.dataset_json = load_json(join(folder, "dataset.json"))
        self.plans = load_json(join(folder, "plans.json"))
        self.file_ending = self.dataset_json["file_ending"]
        self.label_manager = PlansManager(self.plans).get_label_manager(self.dataset_json)

    def reader_writer(self) -> BaseReaderWriter:
        """The image reader/writer named in the plans."""
        return PlansManager(self.plans).image_reader_writer_class()

    def case_ids(self) -> List[str]:
        """Cases with saved probabilities; an error if there are none or some segmentations lack them."""
        with_probabilities = [name[:-len(".npz")] for name in subfiles(self.folder, suffix=".npz", join=False)]
        segmented = [name[:-len(self.file_ending)] for name in subfiles(self.folder, suffix=self.file_ending, join=False)
                     if not name.startswith(".")]
        lacking = sorted(set(segmented) - set(with_probabilities))
        if not with_probabilities and not segmented:
            raise FileNotFoundError(f"{self.folder} holds no predicted case (no .npz probabilities, no "
                                    f"{self.file_ending} segmentation); expected a folder written by "
                                    f"nnUNetv2_predict --save_probabilities")
        if not with_probabilities or lacking:
            raise FileNotFoundError(f"{self.folder}: cases {lacking or segmented} have no .npz probabilities; "
                                    f"run nnUNetv2_predict with --save_probabilities")
        return sorted(with_probabilities)

    def load_case(self, case_id: str) -> Tuple[np.ndarray, dict]:
        """(probabilities as float32, properties) of ``case_id``, checked (:meth:`check_probabilities`)."""
        npz_file, pkl_file = (join(self.folder, case_id + ending) for ending in (".npz", ".pkl"))
        if not isfile(pkl_file):
            raise FileNotFoundError(f"case {case_id}: {pkl_file} (nnU-Net's properties) is missing")
        try:
            with np.load(npz_file) as npz:
                probabilities = npz["probabilities"].astype(np.float32, copy=False)
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
            raise ValueError(f"case {case_id}: cannot read {npz_file}: expected an .npz with the array "
                             f"'probabilities' (nnUNetv2_predict --save_probabilities), found: {error!r}") from error
        try:
            properties = load_pickle(pkl_file)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError) as error:
            raise ValueError(f"case {case_id}: cannot read {pkl_file}: expected nnU-Net's pickled properties, "
                             f"found: {error!r}") from error
        if not isinstance(properties, dict):
            raise ValueError(f"case {case_id}: {pkl_file} holds a {type(properties).__name__}, expected nnU-Net's "
                             f"properties (a dict)")
        self.check_probabilities(case_id, npz_file, probabilities)
        return probabilities, properties

    def check_probabilities(self, case_id: str, npz_file: str, probabilities: np.ndarray) -> None:
        """Raise ValueError naming the case unless ``probabilities`` has one channel per class of the dataset,
        finite values in [0, 1] and (for softmax outputs, not regions) classes that sum to one per voxel."""
        expected = self.label_manager.num_segmentation_heads
        if probabilities.ndim != 4 or probabilities.shape[0] != expected:
            raise ValueError(f"case {case_id}: {npz_file} holds probabilities of shape {probabilities.shape}, "
                             f"expected ({expected}, z, y, x): one channel per class of dataset.json")
        not_finite = int(np.count_nonzero(~np.isfinite(probabilities)))
        if not_finite:
            raise ValueError(f"case {case_id}: {npz_file} holds {not_finite} NaN/inf probabilities, expected "
                             f"finite values in [0, 1]")
        low, high = float(probabilities.min()), float(probabilities.max())
        if low < -PROBABILITY_TOLERANCE or high > 1 + PROBABILITY_TOLERANCE:
            raise ValueError(f"case {case_id}: {npz_file} holds values in [{low:.4g}, {high:.4g}], expected "
                             f"probabilities in [0, 1]")
        if not self.label_manager.has_regions:
            deviation = float(np.abs(probabilities.sum(0, dtype=np.float64) - 1).max())
            if deviation > PROBABILITY_TOLERANCE:
                raise ValueError(f"case {case_id}: {npz_file}: the class probabilities of a voxel sum to 1 +- "
                                 f"{deviation:.4g}, expected 1 (+- {PROBABILITY_TOLERANCE}; softmax outputs)")


def raw_image_files(raw_folder: str, case_id: str, dataset_json: dict) -> List[str]:
    """``raw_folder/CASE_XXXX<ending>`` for every channel of the dataset; an error naming the case if one is missing."""
    channels = dataset_json.get("channel_names", dataset_json.get("modality"))
    files = [join(raw_folder, f"{case_id}_{channel:04d}{dataset_json['file_ending']}") for channel in range(len(channels))]
    missing = [os.path.basename(f) for f in files if not isfile(f)]
    if missing:
        raise FileNotFoundError(f"case {case_id}: raw image(s) {missing} not found in {raw_folder}")
    return files
