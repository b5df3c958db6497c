"""Kidneys from a coarse nnU-Net model trained on whole CTs (e.g. its 3d_lowres configuration).

    nnUNetv2_train 501 3d_lowres 0          # on a whole-CT dataset (a conversion without --roi)
    nnunet_ppm localize -i CTS -o boxes.json \\
        --coarse-model $nnUNet_results/Dataset501_KiTS19/nnUNetTrainer__nnUNetPlans__3d_lowres

nnU-Net's predictor segments the whole CT (its preprocessing, sliding window
and resampling back to the CT); the kidneys of that label map are told apart
and sided exactly as ROI conversion does
(:func:`~nnunet_ppm.dataset_conversion.roi.find_kidneys`), and each kidney's
box is the tight box of its voxels. Confidence: the mean probability of
"not background" over the foreground voxels in the kidney's box.
"""
import json
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunet_ppm.dataset_conversion.roi import find_kidneys
from nnunet_ppm.localization.localizer import CtCase, KidneyLocalizer, LocatedKidney, edge_notes

PathLike = Union[str, Path]


class NnunetLocalizer(KidneyLocalizer):
    """Kidneys from the segmentation of a whole CT by a trained nnU-Net model.

    Args:
        model_folder: the trained model (``nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIGURATION``),
            with labels kidney 1 and tumor 2.
        folds: folds to ensemble.
        checkpoint: checkpoint file name.
        device: torch device.
        kidney_margin_mm: see :class:`~.localizer.KidneyLocalizer`.
    """

    name = "nnunet"

    def __init__(self, model_folder: PathLike, folds: Sequence[Union[int, str]] = (0,),
                 checkpoint: str = "checkpoint_final.pth", device: torch.device = torch.device("cpu"),
                 kidney_margin_mm: float = 0.0):
        super().__init__(kidney_margin_mm)
        self.model_folder = Path(model_folder)
        dataset_json = self.model_folder / "dataset.json"
        if not dataset_json.is_file():
            raise FileNotFoundError(f"{self.model_folder} is not a trained nnU-Net model folder (no dataset.json)")
        labels = json.loads(dataset_json.read_text(encoding="utf-8")).get("labels", {})
        if labels.get("kidney") != 1 or labels.get("tumor") != 2:
            raise ValueError(f"{dataset_json}: the coarse model must predict kidney 1 and tumor 2 (the labels of "
                             f"`nnunet_ppm convert`); its labels are {labels}")
        self.folds, self.checkpoint = list(folds), checkpoint
        self.predictor = nnUNetPredictor(use_mirroring=False, perform_everything_on_device=device.type == "cuda",
                                         device=device, allow_tqdm=False)
        self.predictor.initialize_from_trained_model_folder(str(self.model_folder), self.folds, checkpoint)

    def settings(self) -> dict:
        return {"model": str(self.model_folder), "folds": self.folds, "checkpoint": self.checkpoint}

    def find(self, ct: CtCase) -> Tuple[List[LocatedKidney], List[str]]:
        if ct.dicom is None:
            data, properties = self.predictor.plans_manager.image_reader_writer_class().read_images([str(ct.path)])
        else:  # a DICOM series: the image as nnU-Net's SimpleITKIO reads a file
            image = ct.image
            data = sitk.GetArrayFromImage(image)[None].astype(np.float32)
            properties = {"sitk_stuff": {"spacing": image.GetSpacing(), "origin": image.GetOrigin(),
                                         "direction": image.GetDirection()},
                          "spacing": list(np.abs(image.GetSpacing()[::-1]))}
        segmentation, probabilities = self.predictor.predict_single_npy_array(data, properties, None, None, True)
        expected = sitk.GetArrayViewFromImage(ct.image).shape
        if segmentation.shape != expected:
            raise ValueError(f"the coarse model's reader gives shape {segmentation.shape}, SimpleITK "
                             f"{expected}; use a model planned with SimpleITKIO")
        label = sitk.GetImageFromArray(segmentation.astype(np.uint8))
        label.CopyInformation(ct.image)
        kidneys = []
        for kidney in find_kidneys(label, ct.image):
            bounds = tuple(slice(start, stop) for start, stop in kidney.bounds)
            foreground = 1.0 - probabilities[0][bounds][segmentation[bounds] > 0]
            kidneys.append(LocatedKidney(kidney.side, kidney.bounds, float(foreground.mean())))
        return kidneys, [note for kidney in kidneys for note in edge_notes(kidney.side, kidney.box, ct.image)]
