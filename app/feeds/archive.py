"""The archive folder of a feed: raw files as the publisher served them, written atomically.

Each file is written to a hidden temporary file in the same folder, flushed to disk, then
renamed into place: a download cut short leaves at most a ``.*.part`` file, which neither the
archive nor the importer counts (hidden files are skipped) and the next run replaces.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def clean_partial(folder: Path) -> int:
    """Remove what an interrupted run left half-written; how many files."""
    if not folder.is_dir():
        return 0
    parts = list(folder.glob(".*.part"))
    for part in parts:
        part.unlink(missing_ok=True)
    return len(parts)
