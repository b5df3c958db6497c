"""Atomic file output: write under a temporary name in the target folder, then rename.

An interrupted run leaves at most a hidden ``.tmp-*`` file, never a
half-written file under the final name. The temporary name keeps the final
name as its suffix, so writers that pick the format from the file ending
(SimpleITK, ``np.savez``) behave as for the final name.
"""
import os
import uuid
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def atomic_output_path(final_path: str) -> Iterator[str]:
    """Yield a temporary path next to ``final_path``; rename it to ``final_path`` if the block succeeds.

    If the block raises, the temporary file is removed and ``final_path`` is left untouched.
    """
    folder, name = os.path.split(final_path)
    temporary = os.path.join(folder, f".tmp-{uuid.uuid4().hex[:12]}-{name}")
    try:
        yield temporary
        os.replace(temporary, final_path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
