"""What a leaderboard's numbers measure: end-to-end on whole CTs, or ROIs cut with the reference labels.

A ROI dataset (`nnunet_ppm convert --roi`) holds ROIs cut around each kidney with the reference labels:
the annotation found the kidney, so numbers on those ROIs (its cross-validation) are optimistic for real
use, where the localiser has to find it. (The paper's ROIs came from its multi-atlas localiser.) On
whole-CT reference label maps every prediction must lie on the same whole-CT grid (the evaluation checks
it), so a ROI model can only be scored there through `nnunet_ppm predict-ct` (localiser -> ROIs ->
predict -> paste back), and a whole-CT model through `nnUNetv2_predict`: those numbers are end-to-end.

Which one a leaderboard shows is read from the ``nnunet_ppm`` section that `nnunet_ppm convert` writes
into dataset.json: ``layout`` (the source layout; the KiTS releases hold whole CTs, the ``roi`` layout
holds whatever the source holds), ``roi`` (the window ROIs were cut with, e.g.
``{"in_plane": "150x150", "margin": "10mm"}``; null when the cases were not cut) and ``test_patients``
(the held-out patients: their imagesTs/labelsTs are the source CTs as they are, named by the patient's
case id, also in a ROI dataset, while a ROI case is named ``PATIENT_SIDE``). A ROI dataset is taken to be
cut from whole CTs. A dataset.json without that section (a dataset not converted by
`nnunet_ppm convert`) records none of this, and the statement says so.
"""
import json
from pathlib import Path
from typing import Mapping, Optional, Sequence

CROSS_VALIDATION, TEST_SET = "cross-validation", "test set"
WHOLE_CT_END_TO_END = "End-to-end on whole CTs"
ROI_CUT_WITH_REFERENCE = "on ROIs cut around each kidney with the reference labels"
WHOLE_CT_LAYOUTS = frozenset({"kits19", "kits21", "kits23"})  # source layouts whose CTs are whole abdominal CTs


def conversion_record(dataset_json: Optional[Path]) -> Optional[Mapping]:
    """The ``nnunet_ppm`` section of a dataset.json (None without the file or the section)."""
    if dataset_json is None or not dataset_json.is_file():
        return None
    with open(dataset_json, encoding="utf-8") as handle:
        record = json.load(handle).get("nnunet_ppm")
    return record if isinstance(record, Mapping) else None


def scope_statement(mode: str, record: Optional[Mapping], case_ids: Sequence[str]) -> str:
    """One paragraph for the leaderboard's header: whole CTs (end-to-end) or ROIs (optimistic), and why.

    Args:
        mode: :data:`CROSS_VALIDATION` (fold_N/validation of a dataset) or :data:`TEST_SET` (-ref folder).
        record: the dataset's ``nnunet_ppm`` dataset.json section (:func:`conversion_record`), or None.
        case_ids: the evaluated reference cases.
    """
    if mode not in (CROSS_VALIDATION, TEST_SET):
        raise ValueError(f"mode must be {CROSS_VALIDATION!r} or {TEST_SET!r}, got {mode!r}")
    if record is None:
        return (f"{mode.capitalize()}. Whether the reference label maps are whole CTs or ROIs cut with the "
                "reference labels is not recorded (dataset.json has no nnunet_ppm section: not converted by "
                "`nnunet_ppm convert`); numbers on such ROIs would be optimistic, not end-to-end.")
    window = record.get("roi")
    held_out = set(record.get("test_patients") or ())
    # held-out patients keep the source CT as it is; a ROI dataset was cut from whole CTs
    source_images = window is None or (mode == TEST_SET and set(case_ids) <= held_out)
    if source_images and window is None and record.get("layout") not in WHOLE_CT_LAYOUTS:
        return (f"{mode.capitalize()} on the source's cases as given (`{record.get('layout')}` layout, not cut by "
                "`nnunet_ppm convert`): whether they are whole CTs or ROIs is not recorded. On ROIs (the paper's "
                "came from its multi-atlas localiser) these are not end-to-end numbers, and optimistic where the "
                "ROIs were placed with the reference labels.")
    if source_images and mode == CROSS_VALIDATION:
        return (f"{WHOLE_CT_END_TO_END}, cross-validation: the models were trained and validated on whole CTs "
                "(fold_N/validation of a whole-CT dataset); not a held-out test set.")
    if source_images:
        return (f"{WHOLE_CT_END_TO_END}, test set: the reference label maps are whole CTs and every prediction "
                "lies on the same whole-CT grid, so a ROI model's predictions come from `nnunet_ppm predict-ct` "
                "(localiser -> ROIs -> predict -> paste back) and a whole-CT model's from `nnUNetv2_predict`.")
    window_text = ", ".join(f"{key} {value}" for key, value in window.items()) if isinstance(window, Mapping) \
        else str(window)
    return (f"{mode.capitalize()} {ROI_CUT_WITH_REFERENCE} (window: {window_text}): optimistic, because the "
            "reference labels located the kidney. Not end-to-end: on new CTs the localiser has to find the kidneys "
            "first (`nnunet_ppm predict-ct`), which a test-set leaderboard against the held-out patients' whole-CT "
            "labelsTs measures.")
