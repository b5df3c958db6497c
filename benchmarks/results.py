"""Shared by the benchmark scripts: a table printed row by row, appended, dated, to benchmarks/RESULTS.md.

Each recorded table states date, commit, machine (GPU name, or CPU and its
threads), torch version and the load average at the start and at the end of
the run, so figures from different machines, or from a busy one, are never
mixed up.
"""
import os
import subprocess
from datetime import date
from pathlib import Path
from typing import List

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads, {os.cpu_count()} cores"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages (a shared machine's figures depend on them)."""
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


class Table:
    """Rows of one benchmark run: printed as they come, appended to RESULTS.md by :meth:`record`."""

    def __init__(self, header: List[str]):
        self.header, self.rows = header, []
        self.load_at_start = load_average()

    def add(self, row: List[str]) -> None:
        self.rows.append(row)
        print(" | ".join(row), flush=True)

    def record(self, title: str, device: torch.device) -> None:
        """Append the table to benchmarks/RESULTS.md under ``title``, with date, commit, machine and load."""
        lines = [f"\n### {title}\n",
                 f"{date.today()} · commit {commit()} · {machine(device)} · torch {torch.__version__} · load average "
                 f"(1, 5, 15 min) at the start {self.load_at_start}, at the end {load_average()}\n\n",
                 "| " + " | ".join(self.header) + " |\n", "|" + "---|" * len(self.header) + "\n"]
        lines += ["| " + " | ".join(r) + " |\n" for r in self.rows]
        with RESULTS.open("a", encoding="utf-8") as f:
            f.writelines(lines)
