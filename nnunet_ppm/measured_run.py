"""Run a command and measure it: wall time, peak memory, and when each line of its output came.

Two peak-memory figures, because a prediction command is a tree of processes (preprocessing and export workers):

* ``peak_rss_bytes``: the largest resident set size of any single process of the tree (the kernel's ``ru_maxrss``
  from ``wait4``, exact; the tree's processes that were waited for);
* ``peak_tree_pss_bytes``: the largest sum over the live processes of the tree of their proportional set size
  (PSS: shared pages split among the processes sharing them, so shared libraries are not counted twice), sampled
  from /proc (Linux; 0 where /proc has no ``smaps_rollup``) every ``SAMPLE_SECONDS``, or less often where one
  sample takes longer than ``SAMPLER_CPU_SHARE`` of the interval (reading a process of several GB costs tens of
  ms: sampled every 0.2 s, it took a third of a core from the training it measured, 2026-12-03). A peak shorter
  than the interval can be missed.
"""
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

SAMPLE_SECONDS = 0.2
SAMPLER_CPU_SHARE = 0.02  # the sampler's time at most this share of one core


@dataclass
class MeasuredRun:
    """What :func:`run_measured` saw of one command."""

    returncode: int
    stdout: str
    seconds: float
    peak_rss_bytes: int
    peak_tree_pss_bytes: int
    line_times: List[Tuple[float, str]] = field(default_factory=list)  # (seconds since the start, line)


def _children() -> Dict[int, List[int]]:
    """{parent pid: [child pids]} of every process in /proc."""
    children: Dict[int, List[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        parent = int(stat[stat.rindex(")") + 2:].split()[1])  # after "pid (name) state"
        children.setdefault(parent, []).append(int(entry.name))
    return children


def _pss_bytes(pid: int) -> int:
    """The process's proportional set size; 0 when it is gone or /proc does not show it."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def tree_pss_bytes(root: int) -> int:
    """The summed PSS of process `root` and all its live descendants."""
    children, total, pending = _children(), 0, [root]
    while pending:
        pid = pending.pop()
        total += _pss_bytes(pid)
        pending += children.get(pid, [])
    return total


class _TreeSampler(threading.Thread):
    """Samples :func:`tree_pss_bytes` of a process until stopped; keeps the peak."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0, threading.Event()

    def run(self) -> None:
        interval = SAMPLE_SECONDS
        while not self.stopped.wait(interval):
            started = time.perf_counter()
            self.peak = max(self.peak, tree_pss_bytes(self.pid))
            interval = max(SAMPLE_SECONDS, (time.perf_counter() - started) / SAMPLER_CPU_SHARE)


def run_measured(command: Sequence[str], env: Optional[Dict[str, str]] = None) -> MeasuredRun:
    """Run `command` (stdout and stderr together, as text) to its end and measure it (see the module docstring)."""
    start = time.perf_counter()
    process = subprocess.Popen(list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               encoding="utf-8", errors="replace")
    sampler = _TreeSampler(process.pid)
    sampler.start()
    try:
        line_times = [(time.perf_counter() - start, line) for line in process.stdout]
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        sampler.stopped.set()
        sampler.join()
        process.stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: Popen must not wait again
    return MeasuredRun(process.returncode, "".join(line for _, line in line_times), time.perf_counter() - start,
                       usage.ru_maxrss * 1024, sampler.peak, line_times)
