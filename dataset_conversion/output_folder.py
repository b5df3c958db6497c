"""Atomic output folders: build under a temporary name next to the target, then rename into place.

An interrupted run leaves at most a hidden ``.NAME.partial-PID-TOKEN`` folder, never a
half-written folder under the real name. Replacing an existing folder needs
``overwrite=True``; the old folder is renamed away (``.NAME.replaced-PID-TOKEN``) first
and deleted only after the new one is in place; on an error it is put back.

Each run holds an exclusive lock (``flock``) on ``.NAME.staging-PID-TOKEN.lock`` beside
the target for as long as its staging folder exists. The next run for the same target
removes the staging folders whose lock nobody holds any more (their run was killed),
and puts back a ``.replaced-`` folder whose run was killed before the new folder was in
place. A folder without its lock file, or whose lock is held (a live concurrent run), or
whose name does not match exactly, is never touched.
"""
import fcntl
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Sequence

LOCK_SUFFIX = ".lock"


def check_target(target: Path, overwrite: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse an existing `target` without `overwrite`, and any target that holds one of the `inputs`."""
    target = Path(target).resolve()
    for source in inputs:
        source = Path(source).resolve()
        if source == target or target in source.parents:
            raise ValueError(f"output folder {target} contains the input {source}; choose another output")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass --overwrite (overwrite=True) to replace it")


def _run_paths(target: Path, run: str) -> dict:
    """The hidden paths of one run (`run` = "PID-TOKEN") beside `target`."""
    return {kind: target.with_name(f".{target.name}.{kind}-{run}") for kind in ("partial", "replaced")} | {
        "lock": target.with_name(f".{target.name}.staging-{run}{LOCK_SUFFIX}")}


def _abandoned_runs(target: Path) -> List[str]:
    """The runs ("PID-TOKEN") that left a staging lock file beside `target`."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.staging-(\d+-[0-9a-f]{{6}}){re.escape(LOCK_SUFFIX)}")
    if not target.parent.is_dir():
        return []
    return sorted(match.group(1) for entry in target.parent.iterdir()
                  if (match := pattern.fullmatch(entry.name)) and entry.is_file() and not entry.is_symlink())


def remove_abandoned_staging(target: Path) -> List[str]:
    """Clean up after killed runs for `target`; returns what was done, one line per folder.

    A run is dead when nobody holds the lock on its lock file. Its ``.partial-`` folder is removed;
    its ``.replaced-`` folder (the previous `target`) is put back when `target` is missing, else removed.
    """
    target = Path(target).resolve()
    done = []
    for run in _abandoned_runs(target):
        paths = _run_paths(target, run)
        try:
            lock = os.open(paths["lock"], os.O_RDWR)
        except FileNotFoundError:  # its run finished meanwhile
            continue
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live run holds it
                continue
            if paths["partial"].is_dir() and not paths["partial"].is_symlink():
                shutil.rmtree(paths["partial"])
                done.append(f"removed {paths['partial']} (staging folder of a killed run)")
            if paths["replaced"].is_dir() and not paths["replaced"].is_symlink():
                if target.exists():
                    shutil.rmtree(paths["replaced"])
                    done.append(f"removed {paths['replaced']} (folder replaced by a killed --overwrite run)")
                else:
                    paths["replaced"].rename(target)
                    done.append(f"restored {target} from {paths['replaced']} (a killed --overwrite run had moved it)")
            paths["lock"].unlink(missing_ok=True)
        finally:
            os.close(lock)
    return done


@contextmanager
def _run_lock(lock_file: Path) -> Iterator[None]:
    """Create `lock_file` and hold an exclusive lock on it; remove it when done."""
    lock = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(lock, f"{os.getpid()}\n".encode())
        yield
    finally:
        lock_file.unlink(missing_ok=True)
        os.close(lock)


@contextmanager
def _locked_run(target: Path) -> Iterator[dict]:
    """This run's hidden paths beside `target` (after cleaning up killed runs), its lock held and its
    ``.partial-`` folder created; the folder is removed at the end unless it was renamed away."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for line in remove_abandoned_staging(target):
        print(line)
    paths = _run_paths(target, f"{os.getpid()}-{secrets.token_hex(3)}")
    with _run_lock(paths["lock"]):
        paths["partial"].mkdir()
        try:
            yield paths
        finally:
            if paths["partial"].exists():
                shutil.rmtree(paths["partial"])


@contextmanager
def scratch_folder(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`, removed at the end, also on an error.

    If the run is killed, the next one for the same `target` removes it (:func:`remove_abandoned_staging`).
    """
    with _locked_run(Path(target).resolve()) as paths:
        yield paths["partial"]


@contextmanager
def staged_folder(target: Path, overwrite: bool = False, inputs: Sequence[Path] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on success it becomes `target`, on error it is removed.

    Staging folders of killed runs for the same `target` are removed first (:func:`remove_abandoned_staging`).
    """
    target = Path(target).resolve()
    with _locked_run(target) as paths:
        check_target(target, overwrite, inputs)
        staging, retired = paths["partial"], paths["replaced"]
        yield staging
        if target.exists():
            check_target(target, overwrite)
            target.rename(retired)
            try:
                staging.rename(target)
            except OSError:
                retired.rename(target)
                raise
            shutil.rmtree(retired)
        else:
            staging.rename(target)
