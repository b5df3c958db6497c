"""The per-CT report of predict-ct (nnunet_ppm.whole_ct.report): tumors, their sides and largest diameters."""
import math

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ppm.evaluation.labels import LabelScheme
from nnunet_ppm.whole_ct.report import largest_diameter_mm, report_text, tumor_findings, write_report
from nnunet_ppm.whole_ct.rois import NO_OWNER, CtRoi

SPACING = (2.0, 1.0, 1.0)  # mm, array order


def _rois():
    box = ((0, 20), (0, 30), (0, 30))
    return [CtRoi("c", "right", box, box, False, 0.9), CtRoi("c", "left", box, box, False, 0.8)]


def _case():
    labels = np.zeros((20, 30, 60), np.uint8)
    owner = np.full(labels.shape, NO_OWNER, np.int8)
    owner[:, :, :30], owner[:, :, 30:] = 0, 1
    labels[2:18, 5:25, 5:25] = 1
    labels[5:10, 10:20, 10:20] = 2  # right tumor: 5 x 10 x 10 voxels
    labels[2:18, 5:25, 35:55] = 1
    labels[8, 12, 40:45] = 2  # left tumor: a line of 5 voxels (flat: no convex hull)
    return labels, owner


def test_largest_diameter_is_the_longest_distance_between_voxel_centres():
    box = np.argwhere(np.ones((5, 10, 10), bool))
    assert largest_diameter_mm(box, SPACING) == pytest.approx(math.sqrt(8 ** 2 + 9 ** 2 + 9 ** 2))
    assert largest_diameter_mm(np.argwhere(np.ones((1, 1, 5), bool)), SPACING) == pytest.approx(4.0)
    assert largest_diameter_mm(np.array([[3, 3, 3]]), SPACING) == 0.0


def test_each_tumor_is_reported_with_its_side_volume_and_diameter_largest_first():
    labels, owner = _case()
    tumors = tumor_findings(labels, owner, _rois(), SPACING, tumor_value=2)
    assert tumors == [{"side": "right", "volume_ml": 1.0, "largest_diameter_mm": round(math.sqrt(8 ** 2 + 9 ** 2 * 2),
                                                                                         1)},
                      {"side": "left", "volume_ml": 0.01, "largest_diameter_mm": 4.0}]
    text = report_text("c", {"right": {"kidney": 12.8, "tumor": 1.0}}, tumors, ["right kidney: note"])
    assert "Research use only" in text and "not a medical device" in text and "Tumors: 2" in text
    assert "| 1 | right | 1.0 | 15.0 |" in text and "- right kidney: note" in text


def test_write_report_writes_the_text_and_the_picture(tmp_path):
    labels, owner = _case()
    ct = sitk.GetImageFromArray(np.where(labels > 0, 180, -100).astype(np.int16))
    ct.SetSpacing(SPACING[::-1])
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(ct)
    tumors = write_report("c", ct, label_image, owner, _rois(), {}, [], LabelScheme(), tmp_path)
    assert len(tumors) == 2 and (tmp_path / "c_report.md").is_file()
    assert (tmp_path / "c_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
