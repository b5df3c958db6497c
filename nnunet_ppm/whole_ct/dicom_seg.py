"""A DICOM Segmentation object of a whole-CT label map, referencing its source CT series (highdicom).

`predict-ct --dicom-seg` writes one next to each label map predicted from a
DICOM series, so that a PACS viewer or 3D Slicer shows the labels over the CT.
It is built by highdicom from the source slices themselves (geometry, study,
patient and frame of reference are copied by the library, not hand-written),
one segment per label of the model (kidney: SCT Kidney; tumor: SCT Neoplasm;
cyst: SCT Cyst; any other label: SCT Tissue), binary, empty frames omitted.
Its series description and image comments say that it is for research use
only, validated on synthetic CTs, and not a medical device.
Needs the optional extra: ``pip install "nnunet-ppm[dicom]"``.
"""
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from nnunet_ppm import __version__
from nnunet_ppm.atomic_io import atomic_output

RESEARCH_ONLY = ("research use only: validated on synthetic CTs painted onto real label maps, "
                 "not a medical device")
SERIES_DESCRIPTION = "kidney+tumor (nnunet-ppm) RESEARCH ONLY, not a medical device"  # <= 64 characters


def require_highdicom():
    """highdicom and pydicom, or ValueError saying how to install them."""
    try:
        import highdicom
        import pydicom
    except ImportError as error:
        raise ValueError('--dicom-seg needs highdicom: pip install "nnunet-ppm[dicom]"') from error
    return highdicom, pydicom


def segment_descriptions(label_values: Dict[str, int]) -> list:
    """highdicom SegmentDescriptions, segment numbers 1.. in the order of the foreground label values."""
    highdicom, _ = require_highdicom()
    from pydicom.sr.codedict import codes
    algorithm = highdicom.AlgorithmIdentificationSequence(name="nnunet-ppm 3D_FCN_PPM", version=__version__,
                                                          family=codes.cid7162.ArtificialIntelligence)
    anatomy, abnormal = codes.SCT.AnatomicalStructure, codes.SCT.MorphologicallyAbnormalStructure
    known = {"kidney": (anatomy, codes.SCT.Kidney), "tumor": (abnormal, codes.SCT.Neoplasm),
             "cyst": (abnormal, codes.SCT.Cyst)}
    foreground = sorted((value, name) for name, value in label_values.items() if value != 0)
    return [highdicom.seg.SegmentDescription(
        segment_number=number, segment_label=name,
        segmented_property_category=known.get(name, (codes.SCT.Tissue,))[0],
        segmented_property_type=known.get(name, (None, codes.SCT.Tissue))[1],
        algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
        for number, (_, name) in enumerate(foreground, start=1)]


def write_dicom_seg(labels: np.ndarray, source_files: Sequence[str], label_values: Dict[str, int],
                    path: Path) -> None:
    """Write `labels` (the label map on the CT's grid, SimpleITK array order: one 2D frame per source file, in
    the order of `source_files`) as a DICOM Segmentation referencing those slices; atomically."""
    highdicom, pydicom = require_highdicom()
    sources = [pydicom.dcmread(str(f)) for f in source_files]
    if labels.shape[0] != len(sources) or labels.shape[1:] != (sources[0].Rows, sources[0].Columns):
        raise ValueError(f"{path.name}: label map of shape {labels.shape} does not match {len(sources)} slices of "
                         f"{sources[0].Rows} x {sources[0].Columns}")
    foreground = sorted(value for value in label_values.values() if value != 0)
    segments = np.zeros(labels.shape, np.uint8)  # segment numbers 1.. in foreground-label order
    for number, value in enumerate(foreground, start=1):
        segments[labels == value] = number
    segmentation = highdicom.seg.Segmentation(
        source_images=sources, pixel_array=segments,
        segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(label_values), series_instance_uid=highdicom.UID(),
        series_number=9001, sop_instance_uid=highdicom.UID(), instance_number=1, manufacturer="nnunet-ppm",
        manufacturer_model_name="3D_FCN_PPM (nnunet-ppm)", software_versions=__version__,
        device_serial_number="none", series_description=SERIES_DESCRIPTION,
        content_description="research use only; not a medical device")
    segmentation.ImageComments = RESEARCH_ONLY
    with atomic_output(path) as temporary:
        segmentation.save_as(str(temporary))
