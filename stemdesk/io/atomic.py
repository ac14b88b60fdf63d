"""Write files so that a reader sees the old file or the complete new one, never a partial one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_temp(path: Path) -> Path:
    """An empty, new temporary file beside ``path``, created with the user's umask (mkstemp would make it 0600)."""
    for _ in range(100):
        temp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temp
        except FileExistsError:
            continue
    raise OSError(f"cannot create a temporary file in {path.parent}")


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file, flush it to disk, and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = create_temp(path)
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
