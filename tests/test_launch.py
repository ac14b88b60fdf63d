"""The stemdesk command re-executes itself once with glibc allocator tunables (stemdesk/launch.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stemdesk.launch import TUNABLES, tuned_environment

from conftest import REPO


def test_tunables_are_added_only_on_linux_glibc_and_never_over_the_users():
    env = {"PATH": "/bin"}
    assert tuned_environment(env, "linux", glibc=True) == {"PATH": "/bin", "GLIBC_TUNABLES": TUNABLES}
    assert tuned_environment(env, "darwin", glibc=True) is None
    assert tuned_environment(env, "win32", glibc=False) is None
    assert tuned_environment(env, "linux", glibc=False) is None               # musl
    assert tuned_environment({**env, "GLIBC_TUNABLES": ""}, "linux", glibc=True) is None
    assert env == {"PATH": "/bin"}                                            # the caller's mapping is untouched


@pytest.mark.skipif(not sys.platform.startswith("linux") or tuned_environment({}) is None,
                    reason="the tunables apply on Linux with glibc")
def test_the_process_runs_again_once_with_its_own_arguments_and_the_tunables():
    code = ("import os, sys; from stemdesk.launch import reexec_tuned; "
            "print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:], flush=True); reexec_tuned()")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", code, "a b", "--flag"], capture_output=True, text=True, env=env,
                         cwd=REPO, check=True).stdout.splitlines()
    assert out == ["None ['a b', '--flag']", f"{TUNABLES} ['a b', '--flag']"]


def test_python_m_stemdesk_still_runs_after_re_executing_itself():
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-m", "stemdesk", "--version"], capture_output=True, text=True, env=env,
                          cwd=REPO)
    assert done.returncode == 0 and done.stdout.startswith("stemdesk ")
