"""Whole-CT prediction: localise and crop, predict the ROIs, paste back and report (:func:`predict_whole_cts`).

``nnunet_ppm predict-ct`` (:mod:`.predict_ct_cli`) runs these steps with
``nnunet_ppm predict`` as the ROI prediction between cropping and pasting.

Per CT it writes ``OUT/<case>.nii.gz`` (labels in the CT's own geometry) and
``OUT/<case>.json``: the localiser's findings, the ROIs (``side``, ``box`` in
the roi_manifest.json convention, ``kidney_box``), volumes in ml per side and
label, and timings in seconds. ``roi_prediction`` is this CT's share of the one
ROI prediction run over all CTs (split by ROI voxels);
``roi_prediction_all_cts`` is that run's wall time. Where the ROI prediction
timed its cases (``nnunet_ppm predict`` with post-processing or -nps 0: its
case_seconds.json), the steps of this CT's ROIs, summed over them:
``roi_preprocessing``, ``roi_sliding_window``, ``roi_resampling``, ``roi_crf``,
``roi_largest_component`` (those that ran; see
:mod:`nnunet_ppm.inference.ppm_predictor`).
"""
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from nnunet_ppm.atomic_io import atomic_output, write_text_atomic
from nnunet_ppm.dataset_conversion.image_files import write_image
from nnunet_ppm.dataset_conversion.orientation import orientation_code
from nnunet_ppm.dataset_conversion.output_folder import scratch_folder
from nnunet_ppm.dataset_conversion.roi import RoiWindow, parse_in_plane_size, parse_length
from nnunet_ppm.evaluation.labels import scheme_from_labels
from nnunet_ppm.evaluation.scope import conversion_record
from nnunet_ppm.inference.ppm_predictor import case_seconds_file
from nnunet_ppm.localization.localizer import CtCase, KidneyLocalizer, Localization
from nnunet_ppm.whole_ct.report import write_report
from nnunet_ppm.whole_ct.rois import (CtRoi, check_roi_prediction, paste_rois, reoriented, rois_for, volumes_ml,
                                      write_roi_images)


def roi_orientation_of(model_folder: Path) -> Optional[str]:
    """The orientation code of the model's training ROIs (its dataset.json; None: not recorded, ROIs are then
    predicted in each CT's own orientation)."""
    return (conversion_record(Path(model_folder) / "dataset.json") or {}).get("roi_orientation")


def roi_window_of(model_folder: Path, roi_size: Optional[str] = None, roi_margin: Optional[str] = None) -> RoiWindow:
    """The ROI window the model was trained with (its dataset.json), or the one given; both given win."""
    recorded = (conversion_record(Path(model_folder) / "dataset.json") or {}).get("roi")
    if recorded is None and (roi_size is None or roi_margin is None):
        raise ValueError(f"{model_folder}/dataset.json does not record an ROI window (the model was not trained "
                         f"on `nnunet_ppm convert --roi` output); give --roi-size and --roi-margin")
    window = RoiWindow.from_description(recorded) if recorded else RoiWindow()
    return RoiWindow(parse_in_plane_size(roi_size) if roi_size else window.in_plane,
                     parse_length(roi_margin) if roi_margin else window.margin)


@dataclass
class CtRecord:
    """One CT on its way through whole-CT prediction."""

    ct: CtCase
    localization: Localization
    rois: List[CtRoi]
    seconds: Dict[str, float] = field(default_factory=dict)

    @property
    def roi_voxels(self) -> int:
        return sum(int(np.prod([stop - start for start, stop in roi.box])) for roi in self.rois)


def localise_and_crop(cases: Sequence[CtCase], localizer: KidneyLocalizer, window: RoiWindow, roi_folder: Path,
                      roi_ending: str, progress: bool = True, orientation: Optional[str] = None) -> List[CtRecord]:
    """Step 1: find each CT's kidneys and write its ROI crops into `roi_folder` (nnU-Net input naming), in
    `orientation` (the model's)."""
    records = []
    try:
        for ct in tqdm(cases, desc="localising and cropping", unit="CT", disable=not progress):
            localization = localizer.locate(ct)
            start = time.perf_counter()
            rois = rois_for(localization, ct.image, window)
            write_roi_images(ct.image, rois, roi_folder, roi_ending, orientation)
            records.append(CtRecord(ct, localization, rois, {"localization": round(localization.seconds, 3),
                                                             "cropping": round(time.perf_counter() - start, 3)}))
            del ct.image  # read again when pasting; holding every CT would fill the memory
    finally:
        localizer.close()  # its worker processes are not needed while the ROIs are predicted
    return records


def share_prediction_time(records: Sequence[CtRecord], seconds: float) -> None:
    """Record each CT's share of one ROI prediction run (by ROI voxels) and the run's wall time."""
    total = sum(record.roi_voxels for record in records)
    for record in records:
        record.seconds["roi_prediction"] = round(seconds * record.roi_voxels / total, 3) if total else 0.0
        record.seconds["roi_prediction_all_cts"] = round(seconds, 3)


def add_roi_step_seconds(records: Sequence[CtRecord], prediction_folder: Path) -> None:
    """Add the seconds of each step of a CT's ROIs (summed, keys ``roi_<step>``) from the ROI prediction's
    case_seconds.json, where it wrote one."""
    path = case_seconds_file(prediction_folder)
    if not path.is_file():
        return
    per_case = json.loads(path.read_text(encoding="utf-8"))
    for record in records:
        for roi in record.rois:
            if roi.roi_case not in per_case:
                raise ValueError(f"{path} does not time ROI {roi.roi_case} of CT {record.ct.case_id}")
            for step, seconds in per_case[roi.roi_case].items():
                key = f"roi_{step}"
                record.seconds[key] = round(record.seconds.get(key, 0.0) + seconds, 3)


def paste_and_write(record: CtRecord, prediction_folder: Path, roi_ending: str, out: Path, label_names: dict,
                    about: dict, dicom_seg: bool = False, with_report: bool = True) -> dict:
    """Step 3: paste the ROI predictions into the CT's geometry; write OUT/<case>.<ending> and OUT/<case>.json
    (with `with_report`, OUT/<case>_report.md and .png: :mod:`.report`; with `dicom_seg`, for a CT read from DICOM,
    OUT/<case>_seg.dcm: :mod:`.dicom_seg`)."""
    start = time.perf_counter()
    ct = record.ct.image
    shape, spacing = sitk.GetArrayViewFromImage(ct).shape, ct.GetSpacing()[::-1]
    predictions = []
    for roi in record.rois:
        prediction = reoriented(sitk.ReadImage(str(prediction_folder / f"{roi.roi_case}{roi_ending}")),
                                orientation_code(ct.GetDirection()))  # back from the model's orientation
        check_roi_prediction(prediction, roi, ct)
        predictions.append(sitk.GetArrayFromImage(prediction))
    labels, owner = paste_rois(shape, spacing, record.rois, predictions)
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(ct)
    with atomic_output(out / f"{record.ct.case_id}{record.ct.output_ending}") as temporary:
        write_image(label_image, temporary)
    written = {}
    volumes = volumes_ml(labels, owner, record.rois, spacing, label_names)
    if with_report:
        written["tumors"] = write_report(record.ct.case_id, ct, label_image, owner, record.rois, volumes,
                                         record.localization.notes, scheme_from_labels(label_names), out)
        written["report"] = [f"{record.ct.case_id}_report.md", f"{record.ct.case_id}_report.png"]
    if dicom_seg and record.ct.dicom is not None:
        from nnunet_ppm.whole_ct.dicom_seg import write_dicom_seg
        write_dicom_seg(labels, record.ct.dicom.files, label_names, out / f"{record.ct.case_id}_seg.dcm")
        written["dicom_seg"] = f"{record.ct.case_id}_seg.dcm"
    record.seconds["paste_and_write"] = round(time.perf_counter() - start, 3)
    report = {"case": record.ct.case_id, "ct": str(record.ct.path), **about,
              **({"dicom": record.ct.dicom.describe()} if record.ct.dicom else {}), **written,
              "kidneys_found": len(record.localization.kidneys),
              "localization_confidence": record.localization.to_json()["confidence"],
              "notes": record.localization.notes,
              "rois": [roi.to_json() for roi in record.rois],
              "volumes_ml": volumes,
              "seconds": record.seconds}
    write_text_atomic(out / f"{record.ct.case_id}.json", json.dumps(report, indent=1) + "\n")
    return report


def roi_manifest(records: Sequence[CtRecord]) -> List[dict]:
    """roi_manifest.json entries (as ``convert --roi`` writes them) for every ROI cropped."""
    return [{"roi_case": roi.roi_case, "source_case": roi.case, "side": roi.side, "box": [list(a) for a in roi.box]}
            for record in records for roi in record.rois]


def predict_whole_cts(cases: Sequence[CtCase], localizer: KidneyLocalizer, window: RoiWindow,
                      predict_rois: Callable[[Path, Path], None], out: Path, roi_ending: str, label_names: dict,
                      about: dict, keep_rois: bool = False, progress: bool = True, dicom_seg: bool = False,
                      with_report: bool = True, orientation: Optional[str] = None) -> List[dict]:
    """All steps for `cases`; returns the report of each CT (what OUT/<case>.json holds).

    Args:
        predict_rois: ``predict_rois(images, predictions)`` segments the ROI crops of folder `images`
            (nnU-Net input naming) into folder `predictions` (``nnunet_ppm predict`` in the CLI).
        roi_ending: file ending of ROI crops and predictions (the model's dataset.json).
        label_names: the model's labels ({name: value}).
        about: model and settings, copied into every report.
        keep_rois: keep crops, predictions and roi_manifest.json in OUT/rois (replacing an older one).
        dicom_seg: also write a DICOM Segmentation of each CT read from DICOM (OUT/<case>_seg.dcm).
        with_report: also write each CT's report (OUT/<case>_report.md and .png, :mod:`.report`).
        orientation: the orientation code of the model's training ROIs (:func:`roi_orientation_of`); every ROI is
            predicted in it and its labels brought back to the CT's orientation.

    The crops and predictions live in a hidden folder of `out` that is removed at the end (or becomes
    OUT/rois); that of a killed run is removed by the next run into `out`. Every output file is written
    atomically.
    """
    out.mkdir(parents=True, exist_ok=True)
    with scratch_folder(out / "rois") as staging:
        images, predictions = staging / "images", staging / "predictions"
        images.mkdir()
        records = localise_and_crop(cases, localizer, window, images, roi_ending, progress, orientation)
        if any(record.rois for record in records):
            start = time.perf_counter()
            predict_rois(images, predictions)
            share_prediction_time(records, time.perf_counter() - start)
            add_roi_step_seconds(records, predictions)
        reports = [paste_and_write(record, predictions, roi_ending, out, label_names, about, dicom_seg, with_report)
                   for record in tqdm(records, desc="pasting back", unit="CT", disable=not progress)]
        if keep_rois:
            write_text_atomic(staging / "roi_manifest.json", json.dumps(roi_manifest(records), indent=1) + "\n")
            shutil.rmtree(out / "rois", ignore_errors=True)
            staging.rename(out / "rois")
    return reports

