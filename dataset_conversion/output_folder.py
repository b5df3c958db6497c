"""Atomic output folders: build under a temporary name next to the target, then rename into place.

An interrupted run leaves at most a hidden ``.NAME.partial-*`` folder, never a
half-written folder under the real name. Replacing an existing folder needs
``overwrite=True``; the old folder is renamed away first and deleted only after
the new one is in place.
"""
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence


def check_target(target: Path, overwrite: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse an existing `target` without `overwrite`, and any target that holds one of the `inputs`."""
    target = Path(target).resolve()
    for source in inputs:
        source = Path(source).resolve()
        if source == target or target in source.parents:
            raise ValueError(f"output folder {target} contains the input {source}; choose another output")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass --overwrite (overwrite=True) to replace it")


@contextmanager
def staged_folder(target: Path, overwrite: bool = False, inputs: Sequence[Path] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on success it becomes `target`, on error it is removed."""
    target = Path(target).resolve()
    check_target(target, overwrite, inputs)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(3)}")
    staging.mkdir()
    try:
        yield staging
        if target.exists():
            check_target(target, overwrite)
            retired = target.with_name(f".{target.name}.replaced-{os.getpid()}-{secrets.token_hex(3)}")
            target.rename(retired)
            try:
                staging.rename(target)
            except OSError:
                retired.rename(target)
                raise
            shutil.rmtree(retired)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
