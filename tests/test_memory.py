"""The allocator settings for separating and training (stemdesk/io/process.py), in a real process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

# Where a 96 MB tensor lives (in the heap, or in a mapping of its own) and whether freeing it gives the memory back.
PLACE = """
import sys, torch
from stemdesk.io.process import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator()
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
tensor = torch.empty(24 << 20).fill_(1.0)
start, end = [int(x, 16) for x in next(l for l in open("/proc/self/maps") if "[heap]" in l).split()[0].split("-")]
filled = resident_mb()
in_heap = start <= tensor.data_ptr() < end
del tensor
print(in_heap, filled - resident_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_big_tensors_come_from_the_heap_and_their_memory_stays_for_the_next():
    result = {}
    for mode in ("defaults", "tuned"):
        done = subprocess.run([sys.executable, "-c", PLACE, mode], capture_output=True, text=True, cwd=REPO,
                              env={"PATH": "/usr/bin:/bin", "GLIBC_TUNABLES": ""}, check=True)
        in_heap, released_mb = done.stdout.split()
        result[mode] = (in_heap == "True", int(released_mb))
    assert result["defaults"][0] is False and result["defaults"][1] >= 90   # its own mapping, unmapped when freed
    assert result["tuned"] == (True, 0), result                                # kept, to be reused without faults
