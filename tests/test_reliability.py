"""The reliability suite (scripts/reliability.py), one test per case: bad inputs, full disks, untrusted model, mix
and project files, kill -9 mid-write, and 20 queued jobs cancelled and re-queued at random."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reliability.py"
_spec = importlib.util.spec_from_file_location("stemdesk_reliability", SCRIPT)
reliability = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = reliability          # dataclasses look their module up here
_spec.loader.exec_module(reliability)

CASES = reliability.all_cases()
# the cases that run whole processes, models or installs: `-m "not slow"` leaves them out of the inner loop
SLOW = ("kill -9", "20 queued jobs", "HTDemucs install", "model install", "2-hour")


def test_the_corpus_has_at_least_40_cases():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if any(w in c.name for w in SLOW) else c
                                  for c in CASES], ids=[c.name for c in CASES])
def test_case(case, tmp_path):
    result = case.run(tmp_path)
    if result.skipped:
        pytest.skip(result.skipped)
    assert not result.crash, result.observed
    assert result.partial == 0, result.observed
    assert result.passed, f"expected {case.expected}; observed {result.observed}"
