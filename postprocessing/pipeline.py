"""The paper's post-processing of one case: CRF, then largest component, then an atomic write.

``nnunet_ppm predict`` (right after nnU-Net's resampling) and
``nnunet_ppm postprocess`` (on the .npz of ``nnUNetv2_predict
--save_probabilities``) both call :func:`postprocess_and_write_case`, which
is why their outputs are identical. It returns the seconds of each step it ran
("crf", "largest_component").
"""
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter

from nnunet_ppm.postprocessing.argmax import argmax_labels
from nnunet_ppm.atomic_io import atomic_output
from nnunet_ppm.postprocessing.case_geometry import check_case_geometry
from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_ppm.postprocessing.dense_crf import dense_crf
from nnunet_ppm.postprocessing.largest_component import body_midline, left_right_axis
from nnunet_ppm.postprocessing.nnunet_pp_pkl import component_rule


@dataclass(frozen=True)
class PostprocessingSettings:
    """What to apply after the network.

    Attributes:
        use_crf: run the dense CRF (else the labels are the argmax of the probabilities).
        use_lcc: keep the largest 18-connected kidney+tumor component(s).
        lcc_mode: "largest" (paper; one kidney ROI) or "per-side" (full CT; largest component
            left and right of the patient's midline, found from the CT's body).
        crf_params: CRF parameters.
        crf_backend: mean-field backend (see ``dense_crf.CRF_BACKENDS``): "torch", the fast one, by default;
            "pydensecrf" is the reference it is tested against.
        crf_device: where the torch backend runs ("cpu", "cuda", ...; None: the GPU when present);
            ``nnunet_ppm predict`` and ``predict-ct`` set their ``-device``.
    """
    use_crf: bool = True
    use_lcc: bool = True
    lcc_mode: str = "largest"
    crf_params: CRFParams = field(default_factory=CRFParams)
    crf_backend: str = "torch"
    crf_device: Optional[str] = None


def lr_axis_for(case_id: str, properties: dict, settings: PostprocessingSettings) -> Optional[int]:
    """Left-right array axis of the case when the per-side rule needs it (from SimpleITK's direction), else None."""
    if not (settings.use_lcc and settings.lcc_mode == "per-side"):
        return None
    if "sitk_stuff" not in properties:
        raise ValueError(f"case {case_id}: the per-side component rule needs the image direction, which this "
                         f"dataset's image reader does not store; use SimpleITKIO or --lcc-mode largest")
    return left_right_axis(properties["sitk_stuff"]["direction"])


def postprocess_probabilities(probabilities: np.ndarray, image: np.ndarray, spacing: Sequence[float],
                              settings: PostprocessingSettings, lr_axis: Optional[int] = None,
                              seconds: Optional[Dict[str, float]] = None) -> np.ndarray:
    """Labels of one case after CRF and largest component.

    Args:
        probabilities: softmax probabilities, shape (classes, z, y, x).
        image: CT in HU, shape (z, y, x).
        spacing: voxel size in mm per array axis.
        settings: what to apply.
        lr_axis: left-right array axis, needed by ``lcc_mode="per-side"``.
        seconds: if given, receives the seconds of each step run ("crf", "largest_component").

    Returns:
        uint8 label array, shape (z, y, x).
    """
    seconds = {} if seconds is None else seconds
    start = time.perf_counter()
    if settings.use_crf:
        labels = dense_crf(probabilities, image, spacing, settings.crf_params, settings.crf_backend,
                           settings.crf_device)
        seconds["crf"] = round(time.perf_counter() - start, 3)
    else:
        labels = argmax_labels(probabilities)
    if settings.use_lcc:
        start = time.perf_counter()
        function, kwargs = component_rule(settings.lcc_mode, lr_axis)
        if settings.lcc_mode == "per-side":  # split at the patient's midline, not the image's middle
            kwargs["midline"] = body_midline(image, lr_axis)
        labels = function(labels, **kwargs)
        seconds["largest_component"] = round(time.perf_counter() - start, 3)
    return labels


def read_case_ct(case_id: str, probabilities_shape: Sequence[int], properties: dict, image_files: List[str],
                 reader_writer: BaseReaderWriter) -> np.ndarray:
    """The case's CT (channel 0, HU, shape (z, y, x)) after checking it against the probabilities' shape and geometry."""
    image, image_properties = reader_writer.read_images(image_files)
    check_case_geometry(case_id, probabilities_shape, properties, image.shape, image_properties)
    return image[0]


def postprocess_and_write_case(case_id: str, probabilities: np.ndarray, properties: dict, image_files: List[str],
                               output_file: str, reader_writer: BaseReaderWriter,
                               settings: PostprocessingSettings) -> Dict[str, float]:
    """Read the case's CT, check it against the probabilities, post-process and write the labels atomically;
    returns the seconds of each post-processing step run ("crf", "largest_component").

    Args:
        case_id: case identifier (for error messages).
        probabilities: softmax probabilities in the raw image's geometry, shape (classes, z, y, x).
        properties: nnU-Net's properties of the case (as stored in its .pkl).
        image_files: the case's raw image files (channel 0 is the CT in HU).
        output_file: where the label image goes (its ending selects the format).
        reader_writer: the dataset's nnU-Net image reader/writer.
        settings: what to apply.
    """
    lr_axis = lr_axis_for(case_id, properties, settings)
    image = read_case_ct(case_id, probabilities.shape, properties, image_files, reader_writer)
    seconds: Dict[str, float] = {}
    labels = postprocess_probabilities(probabilities, image, properties["spacing"], settings, lr_axis, seconds)
    with atomic_output(output_file) as temporary:
        reader_writer.write_seg(labels, str(temporary), properties)
    return seconds
