"""Run a function over cases, in worker processes when asked, with a tqdm progress bar."""
import multiprocessing
from typing import Callable, List, Sequence, TypeVar

from tqdm import tqdm

Task = TypeVar("Task")


def map_cases(function: Callable[[Task], object], tasks: Sequence[Task], num_processes: int, description: str,
              show_progress: bool = True) -> List[object]:
    """``[function(task) for task in tasks]``, over ``num_processes`` spawned workers when it is above 1.

    Results keep the order of ``tasks``; the first exception of a worker is raised here.
    """
    with tqdm(total=len(tasks), desc=description, disable=not show_progress) as progress:
        if num_processes <= 1 or len(tasks) <= 1:
            results = []
            for task in tasks:
                results.append(function(task))
                progress.update()
            return results
        with multiprocessing.get_context("spawn").Pool(min(num_processes, len(tasks))) as pool:
            results = []
            for result in pool.imap(function, tasks):
                results.append(result)
                progress.update()
            return results
