"""Benchmark: synthesis and conversion time per case. Run: python benchmarks/dataset_conversion.py [--cases N] [--full N] [--record].

Prints seconds per case for: synthesize_case in memory and `synthesize` to disk (tiny, small, full presets),
painting onto the smallest real KiTS19 label maps (when ../shared/data is there), and `convert_dataset`
of the written cases with and without --roi. Single process; numbers depend on the machine's load.
`--record` appends the table to benchmarks/RESULTS.md (date, commit, machine, load).
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from nnunet_ppm.dataset_conversion.convert import convert_dataset
from nnunet_ppm.dataset_conversion.synthesize import synthesize, synthesize_case
from results import Table  # benchmarks/ is not a package: the script's folder is on sys.path

SHARED_DATA = Path(os.environ.get("NNUNET_PPM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def seconds_per_case(function, count):
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=4, help="cases per tiny/small measurement")
    parser.add_argument("--full", type=int, default=2, help="cases of the full (512x512) preset")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    table = Table(["step", "seconds per case"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for preset, count in (("tiny", args.cases), ("small", args.cases), ("full", args.full)):
            rows.append((f"synthesize_case, {preset} (in memory)",
                         seconds_per_case(lambda: [synthesize_case(i, 0, preset) for i in range(count)], count)))
            source = tmp / f"src_{preset}"
            rows.append((f"synthesize, {preset} (written, .nii.gz)",
                         seconds_per_case(lambda: synthesize(source, count, 0, preset, progress=False), count)))
            for roi in (False, True):
                rows.append((f"convert roi{' --roi' if roi else ''}, {preset}",
                             seconds_per_case(lambda: convert_dataset(source, 900 + roi, roi=roi, raw_dir=tmp / f"raw_{preset}",
                                                                      progress=False), count)))
        labels = sorted((SHARED_DATA / "kits19-labels").glob("case_*.nii.gz"), key=lambda p: p.stat().st_size)[:2]
        if labels:
            painted = tmp / "painted"
            rows.append(("synthesize --labels-from (2 smallest KiTS19, 512x512x29-36)",
                         seconds_per_case(lambda: synthesize(painted, labels_from=labels, layout="kits19", progress=False), 2)))
            for roi in (False, True):
                rows.append((f"convert kits19{' --roi' if roi else ''}, painted KiTS19",
                             seconds_per_case(lambda: convert_dataset(painted, 910 + roi, "kits19", roi=roi,
                                                                      raw_dir=tmp / "raw_painted", progress=False), 2)))
    for name, value in rows:
        table.add([name, f"{value:.2f}"])
    if args.record:
        table.record("Synthesis and conversion per case (benchmarks/dataset_conversion.py, one process)",
                     torch.device("cpu"))


if __name__ == "__main__":
    main()
