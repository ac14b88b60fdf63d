"""The trainer tests' shared fixture: three synthetic songs' sessions (tests/training/synthetic_sessions.py)."""

from __future__ import annotations

import pytest
from synthetic_sessions import write_session


@pytest.fixture
def sessions(tmp_path):
    root = tmp_path / "sessions"
    for seed in range(3):
        write_session(root / f"song {seed}", seed)
    return root
