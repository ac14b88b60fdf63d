"""Process-wide settings for separating and training (stemdesk/io/process.py): threads, and the allocator in a
real process."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import REPO

from stemdesk.io.process import limit_threads

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
        done = subprocess.run(
            [sys.executable, "-c", PLACE, mode],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin"},
            check=True,
        )
        in_heap, released_mb = done.stdout.split()
        result[mode] = (in_heap == "True", int(released_mb))
    assert result["defaults"][0] is False and result["defaults"][1] >= 90  # its own mapping, unmapped when freed
    assert result["tuned"] == (True, 0), result  # kept, to be reused without faults


def test_limit_threads_caps_torch_and_numpys_blas_alike():
    from threadpoolctl import threadpool_info, threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits():  # restores the pools' sizes after
        limit_threads(1)
        blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert blas and all(pool["num_threads"] == 1 for pool in blas)
        assert torch.get_num_threads() == 1
    torch.set_num_threads(before)


def test_a_process_alone_leaves_a_core_free_and_processes_side_by_side_share_the_cores(monkeypatch):
    from stemdesk.io.process import default_threads, process_threads

    assert process_threads(8, 1) == default_threads(8) == 7
    assert [process_threads(8, n) for n in (2, 3, 4, 16)] == [4, 2, 2, 1]
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # as torchrun sets it
    assert process_threads(2) == 1 and process_threads(16) == 8
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert process_threads(16) == 8
