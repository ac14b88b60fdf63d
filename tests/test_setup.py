"""scripts/setup.sh as a new user meets it, run for real on a copy of the repository's files with stand-ins for apt,
dpkg and the environment's Python: it fails loudly (non-zero, with the fix) when apt or pip fails, never leaves an
environment that counts as installed after a failure, and returns at once when nothing changed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO


def script(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def checkout(tmp_path):
    """The files setup.sh reads, a fake bin folder first on PATH, and a .venv whose python logs its calls."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "plugins" / "p").mkdir(parents=True)
    (root / "plugins" / "p" / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    script(fake / "dpkg-query", 'echo -n "install ok installed"\n')  # every Debian package present
    (root / ".venv" / "bin").mkdir(parents=True)
    log = tmp_path / "python.log"
    script(
        root / ".venv" / "bin" / "python",
        f'echo "$*" >> {log}\n'
        'if [[ "$*" == *"pip install"* && -n "${FAIL_PIP:-}" ]]; then\n'
        '  echo "ERROR: No matching distribution found" >&2; exit 1; fi\n'
        'if [[ "$*" == *"pip install"* && -n "${SILENT_PIP:-}" ]]; then\n'
        '  echo "Installing collected packages: torch"; sleep "$SILENT_PIP"; echo "Successfully installed torch"; fi\n',
    )
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    return root, fake, log, env


def run_setup(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(root / "scripts" / "setup.sh"), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_a_failing_pip_fails_loudly_and_nothing_counts_as_installed(checkout):
    root, _, log, env = checkout
    result = run_setup(root, {**env, "FAIL_PIP": "1"})
    assert result.returncode != 0
    assert "FAILED: pip could not install" in result.stderr and "run this again" in result.stderr
    assert "No matching distribution" in result.stderr  # pip's own words are shown
    assert not (root / ".venv" / ".stemdesk-setup").exists()
    # the next run does the install again instead of taking the environment as installed
    again = run_setup(root, env)
    assert again.returncode == 0, again.stderr
    assert log.read_text().count("pip install") == 2
    assert (root / ".venv" / ".stemdesk-setup").is_file()


def test_nothing_changed_means_no_pip_and_an_immediate_return(checkout):
    root, _, log, env = checkout
    assert run_setup(root, env, "--test").returncode == 0
    # the test install adds the reference implementations, without their requirements
    references = [line for line in log.read_text().splitlines() if "--no-deps" in line]
    assert len(references) == 1 and "demucs==" in references[0] and "openunmix==" in references[0]
    calls = log.read_text().count("pip install")
    started = time.monotonic()
    plain = run_setup(root, env)  # a --test install covers a plain run
    assert plain.returncode == 0 and plain.stderr == ""
    assert time.monotonic() - started < 2.0
    assert log.read_text().count("pip install") == calls
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text() + "\n# changed\n")
    assert run_setup(root, env, "--test").returncode == 0  # a change installs again
    assert log.read_text().count("pip install") == calls + 2  # StemDesk, then the reference implementations


def test_a_failing_apt_fails_loudly_with_the_packages_to_install(checkout):
    root, fake, _, env = checkout
    script(fake / "dpkg-query", "exit 1\n")  # nothing installed
    script(fake / "apt-get", 'echo "E: Could not resolve the archive" >&2; exit 100\n')
    script(fake / "sudo", '"$@"\n')
    script(fake / "id", "echo 1000\n")  # not root: through sudo
    result = run_setup(root, env)
    assert result.returncode != 0
    assert "FAILED: apt-get update did not work" in result.stderr and "Could not resolve" in result.stderr
    assert not (root / ".venv" / ".stemdesk-setup").exists()


@pytest.mark.slow
def test_a_long_silent_pip_install_is_never_silent_for_more_than_10_s(checkout):
    """pip says nothing for ~36 s while it unpacks PyTorch; setup says it is still working meanwhile."""
    root, _, _, env = checkout
    started = time.monotonic()
    process = subprocess.Popen(
        ["bash", str(root / "scripts" / "setup.sh")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "SILENT_PIP": "23"},
    )
    lines = [(time.monotonic() - started, line.rstrip()) for line in process.stderr]
    assert process.wait(60) == 0, lines
    said = [line for _, line in lines]
    assert "Installing collected packages: torch" in said and "Successfully installed torch" in said
    beats = [line for line in said if line.startswith("setup: still installing StemDesk's Python packages (")]
    assert 2 <= len(beats) <= 3, said  # after about 8 and 16 s of pip's silence
    times = [0.0] + [t for t, _ in lines]
    assert max(b - a for a, b in zip(times, times[1:])) < 10.5, lines
