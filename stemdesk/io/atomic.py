"""Write files so that a reader sees the old file or the complete new one, never a partial one.

The one way StemDesk does it: write to a temporary beside the target (`create_temp`, `create_temp_dir`, named so a
later run can tell a killed process's leftovers), then `publish` it over the target. `atomic_path`,
`atomic_folder` and `atomic_write_bytes` wrap that for the usual cases; `sweep_stale` removes the leftovers.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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


def sweep_stale(folder: Path, recursive: bool = False) -> int:
    """Delete temporary files and folders that a killed process left in ``folder`` (``.<name>.<pid>-<hex>.part<ext>``
    whose process is gone), and in its subfolders when ``recursive``. Those of running processes, and anything not
    named that way, are left alone. Returns how many were removed."""
    removed = 0
    try:
        candidates = list(Path(folder).rglob(".*.part*") if recursive else Path(folder).glob(".*.part*"))
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


def publish(temp: Path, path: Path) -> Path:
    """Rename a finished temporary file over ``path`` (atomic on one file system)."""
    os.replace(temp, path)
    return path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A new, empty temporary file beside ``path`` to write (by name, with any library); renamed over ``path`` when
    the block ends normally, deleted when it raises (a cancel included)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = create_temp(path)
    try:
        yield temp
        publish(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A new, empty temporary folder beside ``path`` to fill; when the block ends normally it replaces ``path``
    (an existing folder there is removed first), and when it raises it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = create_temp_dir(path)
    try:
        yield staging
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file, flush it to disk, and rename it over ``path``."""
    with atomic_path(path) as temp:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)
