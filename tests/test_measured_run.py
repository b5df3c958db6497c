"""run_measured: a command's output lines with their times, and the peak memory of its process tree."""
import sys

from nnunet_ppm.measured_run import run_measured

MIB = 2 ** 20
# a child that prints, then starts a grandchild holding 200 MiB for a second, then prints again
GRANDCHILD = "import time; block = b'1' * (200 << 20); time.sleep(1.0)"
CHILD = (f"import subprocess, sys, time; print('first', flush=True); "
         f"subprocess.run([sys.executable, '-c', {GRANDCHILD!r}], check=True); print('second', flush=True); "
         f"sys.exit(3)")


def test_a_grandchilds_memory_counts_in_both_peaks_and_each_line_has_its_time():
    run = run_measured([sys.executable, "-c", CHILD])
    assert run.returncode == 3 and run.stdout == "first\nsecond\n"
    (first, line1), (second, line2) = run.line_times
    assert (line1, line2) == ("first\n", "second\n") and second - first >= 1.0
    assert run.seconds >= second
    assert run.peak_rss_bytes >= 200 * MIB, "the grandchild is the largest process"
    assert 200 * MIB <= run.peak_tree_pss_bytes < 400 * MIB, "the tree's PSS while the grandchild held its block"
