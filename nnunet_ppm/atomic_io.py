"""Atomic output files: write to a temporary name beside the target, rename when complete.

An interrupted run then leaves at most a hidden ``.tmp-*`` file, never a
half-written file under the final name. An OSError while writing (a full disk,
a read-only folder) is raised again naming the final file.
"""
import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]
# a full disk or quota, a read-only file system, a file too large: the output folder, not the input, is at fault
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


@contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); it becomes ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        if error.errno not in STORAGE_ERRNOS and str(error.filename) != str(temporary):
            raise
        # name the file the user asked for, not the hidden temporary one
        raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from error
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
