"""Read what `nnUNetv2_predict --save_probabilities` wrote, and find each case's raw images.

Such a folder holds, per case, ``CASE.npz`` (key ``probabilities``, shape
(classes, *raw image array shape)) and ``CASE.pkl`` (nnU-Net's properties),
plus the ``dataset.json`` and ``plans.json`` that name the file ending and
the image reader/writer.
"""
import os
from typing import List, Tuple

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import isfile, join, load_json, load_pickle, subfiles
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager


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

    def reader_writer(self) -> BaseReaderWriter:
        """The image reader/writer named in the plans."""
        return PlansManager(self.plans).image_reader_writer_class()

    def case_ids(self) -> List[str]:
        """Cases with saved probabilities; an error if there are none or some segmentations lack them."""
        with_probabilities = [name[:-len(".npz")] for name in subfiles(self.folder, suffix=".npz", join=False)]
        segmented = [name[:-len(self.file_ending)] for name in subfiles(self.folder, suffix=self.file_ending, join=False)
                     if not name.startswith(".")]
        lacking = sorted(set(segmented) - set(with_probabilities))
        if not with_probabilities or lacking:
            raise FileNotFoundError(f"{self.folder}: cases {lacking or segmented} have no .npz probabilities; "
                                    f"run nnUNetv2_predict with --save_probabilities")
        return sorted(with_probabilities)

    def load_case(self, case_id: str) -> Tuple[np.ndarray, dict]:
        """(probabilities as float32, properties) of ``case_id``."""
        npz_file, pkl_file = (join(self.folder, case_id + ending) for ending in (".npz", ".pkl"))
        if not isfile(pkl_file):
            raise FileNotFoundError(f"case {case_id}: {pkl_file} (nnU-Net's properties) is missing")
        with np.load(npz_file) as npz:
            probabilities = npz["probabilities"].astype(np.float32, copy=False)
        return probabilities, load_pickle(pkl_file)


def raw_image_files(raw_folder: str, case_id: str, dataset_json: dict) -> List[str]:
    """``raw_folder/CASE_XXXX<ending>`` for every channel of the dataset; an error naming the case if one is missing."""
    channels = dataset_json.get("channel_names", dataset_json.get("modality"))
    files = [join(raw_folder, f"{case_id}_{channel:04d}{dataset_json['file_ending']}") for channel in range(len(channels))]
    missing = [os.path.basename(f) for f in files if not isfile(f)]
    if missing:
        raise FileNotFoundError(f"case {case_id}: raw image(s) {missing} not found in {raw_folder}")
    return files
