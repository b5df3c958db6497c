"""Run one function per case, in worker processes, with a progress bar."""
import multiprocessing
from typing import Callable, List, Sequence, TypeVar

from tqdm import tqdm

Job = TypeVar("Job")
Result = TypeVar("Result")


def run_per_case(function: Callable[[Job], Result], jobs: Sequence[Job], num_processes: int = 1,
                 description: str = "cases", progress: bool = True) -> List[Result]:
    """`[function(job) for job in jobs]`, spread over `num_processes` spawned workers; results in job order."""
    bar = dict(total=len(jobs), desc=description, unit="case", disable=not progress)
    if num_processes <= 1 or len(jobs) <= 1:
        return [function(job) for job in tqdm(jobs, **bar)]
    with multiprocessing.get_context("spawn").Pool(min(num_processes, len(jobs))) as pool:
        return list(tqdm(pool.imap(function, jobs), **bar))
