"""The tracked tree stays small enough to travel: a machine lent for GPU checks takes a working tree of at most
64 MiB, and the project keeps 8 MiB of it for what a session builds. The models are most of the tree; the shipped
ones are stored int8/float16 and compressed (lab/store_weights.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIMIT = 56 * 2**20


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked tree cannot be listed")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in listed.decode("utf-8").split("\0") if name]


def test_the_tracked_tree_fits_a_device_machine_with_room_to_spare():
    sizes = {path: path.stat().st_size for path in tracked_files() if path.is_file()}
    total = sum(sizes.values())
    largest = sorted(sizes, key=sizes.__getitem__, reverse=True)[:5]
    named = ", ".join(f"{p.relative_to(REPO)} {sizes[p] / 2**20:.1f} MiB" for p in largest)
    assert total <= LIMIT, (
        f"the tracked tree is {total / 2**20:.1f} MiB, over {LIMIT / 2**20:.0f} MiB; largest: {named}"
    )
