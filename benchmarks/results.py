"""Shared by the benchmark scripts: append a dated table to benchmarks/RESULTS.md.

Each table records date, commit, machine (GPU name, or CPU and its threads)
and the torch version, so figures from different machines are never mixed up.
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
    return f"CPU, {torch.get_num_threads()} threads"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, for the title of a table measured on a shared machine."""
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def record(title: str, header: List[str], rows: List[List[str]], device: torch.device) -> None:
    """Append a dated table to benchmarks/RESULTS.md."""
    lines = [f"\n### {title}\n", f"{date.today()} · commit {commit()} · {machine(device)} · torch {torch.__version__}\n\n",
             "| " + " | ".join(header) + " |\n", "|" + "---|" * len(header) + "\n"]
    lines += ["| " + " | ".join(r) + " |\n" for r in rows]
    with RESULTS.open("a", encoding="utf-8") as f:
        f.writelines(lines)
