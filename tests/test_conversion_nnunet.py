"""nnU-Net accepts what `nnunet_ppm synth` + `nnunet_ppm convert` produce (real commands, tiny cases, CPU).

`nnUNetv2_plan_and_preprocess --verify_dataset_integrity` itself runs on whole CTs in the demo's smoke run (the
`tiny_dataset` fixture) and on per-kidney ROIs in test_heldout_split.py."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from nnunet_runs import run_command

from nnunet_ppm.dataset_conversion.convert import convert_dataset
from nnunet_ppm.dataset_conversion.synthesize import synthesize


def verify(*folders):
    """Run nnU-Net's dataset check (what `nnUNetv2_plan_and_preprocess --verify_dataset_integrity` runs first)
    on each folder, in one fresh interpreter: its worker pool starts faster there than under pytest."""
    script = ("import sys\n"
              "from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity\n"
              "for folder in sys.argv[1:]:\n"
              "    verify_dataset_integrity(folder, 1)\n"
              "    print('VERIFIED', folder)\n")
    output = run_command([Path(sys.executable).name, "-c", script, *folders], dict(os.environ)).stdout
    assert output.count("VERIFIED") == len(folders)


@pytest.mark.integration
def test_every_converter_passes_nnunet_verification_with_and_without_roi(tmp_path):
    folders = []
    for layout in ("roi", "kits19", "kits21", "kits23"):
        source = synthesize(tmp_path / layout, num_cases=2, seed=2, layout=layout, progress=False)
        folders += [convert_dataset(source, dataset_id, layout, roi=roi, roi_size="100mm", keep_healthy=roi,
                                    keep_cyst=roi and layout in ("kits21", "kits23"), raw_dir=tmp_path / f"raw_{layout}",
                                    progress=False)
                    for dataset_id, roi in ((701, False), (702, True))]
    verify(*folders)


def smallest(folder, count, having=None):
    files = sorted(folder.glob("case_*.nii.gz"), key=lambda p: p.stat().st_size)
    if having is not None:
        # a copy, not a view: a view of a temporary image reads freed memory (a segfault crashed the suite once)
        files = [f for f in files if np.any(sitk.GetArrayFromImage(sitk.ReadImage(str(f))) == having)]
    return files[:count]


@pytest.mark.integration
def test_cts_painted_on_real_kits19_and_kits23_labels_pass_nnunet_verification(tmp_path, kits19_labels_dir,
                                                                               kits23_labels_dir):
    kits19 = synthesize(tmp_path / "kits19", labels_from=smallest(kits19_labels_dir, 2), layout="kits19",
                        progress=False)
    kits23 = synthesize(tmp_path / "kits23", labels_from=smallest(kits23_labels_dir, 1, having=3), layout="kits23",
                        progress=False)
    verify(*[convert_dataset(kits19, dataset_id, "kits19", roi=roi, raw_dir=tmp_path, progress=False)
             for dataset_id, roi in ((711, False), (712, True))],
           *[convert_dataset(kits23, dataset_id, "kits23", roi=roi, keep_cyst=True, raw_dir=tmp_path, progress=False)
             for dataset_id, roi in ((721, False), (722, True))])
