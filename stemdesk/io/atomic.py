"""Write files so that a reader sees the old file or the complete new one, never a partial one."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def sweep_stale(folder: Path) -> int:
    """Delete temporary files and folders that a killed process left in ``folder`` (``.<name>.<pid>-<hex>.part<ext>``
    whose process is gone). Those of running processes, and anything not named that way, are left alone."""
    removed = 0
    try:
        candidates = list(Path(folder).glob(".*.part*"))
    except OSError:
        return 0
    for temp in candidates:
        tag = temp.name.rsplit(".part", 1)[0].rsplit(".", 1)[-1]
        pid = tag.split("-", 1)[0]
        if "-" in tag and pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            try:
                shutil.rmtree(temp) if temp.is_dir() and not temp.is_symlink() else temp.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def temp_name(path: Path) -> Path:
    """``.<stem>.<pid>-<hex>.part<suffix>`` beside ``path``: a temporary name `sweep_stale` can tell apart."""
    return path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.part{path.suffix}")


def create_temp_dir(path: Path) -> Path:
    """A new, empty temporary folder beside ``path`` (to be renamed to ``path`` once complete)."""
    sweep_stale(path.parent)
    for _ in range(100):
        temp = temp_name(path)
        try:
            temp.mkdir()
            return temp
        except FileExistsError:
            continue
    raise OSError(f"cannot create a temporary folder in {path.parent}")


def create_temp(path: Path) -> Path:
    """An empty, new temporary file beside ``path``, created with the user's umask (mkstemp would make it 0600).
    Its name carries this process's id, so a later run can tell the leftovers of a killed process (`sweep_stale`)."""
    sweep_stale(path.parent)
    for _ in range(100):
        temp = temp_name(path)
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
