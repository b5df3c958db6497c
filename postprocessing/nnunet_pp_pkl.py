"""The largest-component rule as an nnU-Net ``postprocessing.pkl``.

nnU-Net's ``nnUNetv2_apply_postprocessing -pp_pkl_file FILE`` loads
``(functions, kwargs_list)`` from the pickle and runs
``segmentation = function(segmentation, **kwargs)`` on each case's label array
(array order of the dataset's reader, z, y, x for SimpleITK). Functions are
pickled by reference, so the file works wherever nnunet-ppm is installed.

The pickle holds only the component rule: nnU-Net hands the functions the
label array alone, without probabilities or image, so the CRF cannot run
there (use ``nnunet_ppm postprocess`` for it). Without the image geometry the
per-side rule needs the left-right array axis written into the pickle, and
without the CT it splits the sides at the image's middle, not at the body's
midline as ``nnunet_ppm postprocess`` does.
"""
from typing import Optional

from batchgenerators.utilities.file_and_folder_operations import save_pickle

from nnunet_ppm.atomic_io import atomic_output
from nnunet_ppm.postprocessing.largest_component import keep_largest_component, keep_largest_component_per_side

LCC_MODES = ("largest", "per-side")


def component_rule(lcc_mode: str, lr_axis: Optional[int] = None):
    """(function, kwargs) of the largest-component rule ``lcc_mode`` ("largest" or "per-side")."""
    if lcc_mode == "largest":
        return keep_largest_component, {}
    if lcc_mode == "per-side":
        if lr_axis is None:
            raise ValueError("the per-side component rule needs the left-right array axis (lr_axis)")
        return keep_largest_component_per_side, {"lr_axis": lr_axis}
    raise ValueError(f"unknown component rule {lcc_mode!r}; expected one of {LCC_MODES}")


def write_postprocessing_pkl(pkl_file: str, lcc_mode: str = "largest", lr_axis: Optional[int] = None) -> None:
    """Write ``pkl_file`` for ``nnUNetv2_apply_postprocessing -pp_pkl_file`` with one component rule.

    Args:
        pkl_file: where to write the pickle (written atomically).
        lcc_mode: "largest" (paper, kidney ROIs) or "per-side" (full CTs with two kidneys).
        lr_axis: left-right array axis, required for "per-side" (2 for axial scans with identity direction).
    """
    function, kwargs = component_rule(lcc_mode, lr_axis)
    with atomic_output(pkl_file) as temporary:
        save_pickle(([function], [kwargs]), str(temporary))
