"""Batch separation: mirrors the input tree, byte-identical to `stemdesk separate`, resumable, retried, and the
same on a real two-node Ray cluster even when a worker is killed mid-run."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import alive, song

from stemdesk.cli import main
from stemdesk.core.device import resolve_device
from stemdesk.core.errors import StemDeskError
from stemdesk.jobs.batch import MANIFEST, BatchSettings, run_batch

SETTINGS = BatchSettings(model="tiny-4stem", format="wav", bit_depth="16")


@pytest.fixture
def catalog(tmp_path):
    root = tmp_path / "catalog"
    (root / "album one").mkdir(parents=True)
    (root / "album two").mkdir()
    sf.write(str(root / "album one" / "first.wav"), song(3.0, seed=1), 44100, subtype="PCM_16")
    sf.write(str(root / "album one" / "second.flac"), song(2.0, seed=2), 44100, subtype="PCM_24")
    sf.write(str(root / "album two" / "third.wav"), song(2.5, rate=48000, seed=3), 48000, subtype="PCM_16")
    return root


def records(outdir: Path) -> list[dict]:
    return [json.loads(line) for line in (outdir / MANIFEST).read_text().splitlines()]


def test_local_batch_matches_separate_and_resumes(catalog, tmp_path):
    out = tmp_path / "out"
    summary = run_batch(catalog, out, SETTINGS, workers=2)
    assert (summary.done, summary.failed, summary.skipped) == (3, 0, 0)
    produced = sorted(str(p.relative_to(out)) for p in out.rglob("*.wav"))
    assert produced == sorted(
        f"{d}/{s}/{stem}.wav"
        for d, s in [("album one", "first"), ("album one", "second"), ("album two", "third")]
        for stem in ("bass", "drums", "other", "vocals")
    )
    for record in records(out):
        assert record["status"] == "done" and record["null"]["bit_exact"]
        assert record["device"] == str(resolve_device("auto"))  # where the worker's model ran
        for output in record["outputs"]:
            assert len(output["sha256"]) == 64
    # Byte-identical to the single-song command.
    single = tmp_path / "single"
    assert (
        main(
            [
                "separate",
                str(catalog / "album one" / "first.wav"),
                "-o",
                str(single),
                "--model",
                "tiny-4stem",
                "--bit-depth",
                "16",
            ],
            out=io.StringIO(),
            err=io.StringIO(),
        )
        == 0
    )
    for stem in ("vocals", "drums", "bass", "other"):
        assert (single / "first" / f"{stem}.wav").read_bytes() == (
            out / "album one" / "first" / f"{stem}.wav"
        ).read_bytes()
    # Running again does nothing; a changed song is done again.
    again = run_batch(catalog, out, SETTINGS, workers=1)
    assert (again.done, again.skipped) == (0, 3)
    sf.write(str(catalog / "album two" / "third.wav"), song(2.5, rate=48000, seed=9), 48000, subtype="PCM_16")
    changed = run_batch(catalog, out, SETTINGS, workers=1)
    assert (changed.done, changed.skipped) == (1, 2)


def test_an_opus_file_in_a_catalog_is_separated_not_skipped(tmp_path):
    """Opus (Ogg), as Debian ships warzone2100's music and many downloads come: libsndfile reads it, so the
    catalog's discovery takes it like any other file, and its stems null."""
    root = tmp_path / "catalog"
    root.mkdir()
    sf.write(str(root / "theme.opus"), song(2.0, rate=48000, seed=4), 48000, format="OGG", subtype="OPUS")
    out = tmp_path / "out"
    summary = run_batch(root, out, SETTINGS)
    assert (summary.done, summary.failed, summary.skipped) == (1, 0, 0)
    (record,) = records(out)
    assert record["relative"] == "theme" and record["null"]["bit_exact"]
    stems = sorted(p.name for p in (out / "theme").glob("*.wav"))
    assert stems == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    assert sf.info(str(out / "theme" / "vocals.wav")).frames == sf.info(str(root / "theme.opus")).frames


def test_a_batch_separates_with_an_ensemble_as_separate_does(catalog, tmp_path):
    """The same model string as `stemdesk separate`: its members are checked before any worker starts, the stems
    are byte-identical to the single-song command's and null, and a changed weight does the song again."""
    one = catalog / "album one"
    (one / "second.flac").unlink()
    shutil.rmtree(catalog / "album two")
    out = tmp_path / "out"
    with pytest.raises(StemDeskError, match="stemdesk-2stem: vocals, accompaniment"):
        run_batch(catalog, out, BatchSettings(model="tiny-4stem+stemdesk-2stem"))
    settings = BatchSettings(model="tiny-4stem*1+stemdesk-4stem-lite", bit_depth="16")
    assert run_batch(catalog, out, settings).done == 1
    (record,) = records(out)
    assert record["status"] == "done" and record["null"]["bit_exact"]
    assert record["model"] == "tiny-4stem+stemdesk-4stem-lite"  # the canonical string
    certificate = json.loads((out / "album one" / "first" / "stemdesk-certificate.json").read_text())
    assert [m["id"] for m in certificate["model"]["members"]] == ["tiny-4stem", "stemdesk-4stem-lite"]
    single = tmp_path / "single"
    command = ["separate", str(one / "first.wav"), "-o", str(single), "--bit-depth", "16"]
    assert main([*command, "--model", "tiny-4stem+stemdesk-4stem-lite"], out=io.StringIO(), err=io.StringIO()) == 0
    for stem in ("vocals", "drums", "bass", "other"):
        assert (single / "first" / f"{stem}.wav").read_bytes() == (
            out / "album one" / "first" / f"{stem}.wav"
        ).read_bytes()
    assert run_batch(catalog, out, settings).skipped == 1
    assert run_batch(catalog, out, BatchSettings(model="tiny-4stem*2+stemdesk-4stem-lite", bit_depth="16")).done == 1


def test_a_batch_finds_a_model_in_a_plugins_models_folder(catalog, tmp_path, monkeypatch):
    """`stemdesk batch` looks where `stemdesk separate` looks: a model that only a plugin's models folder holds is
    found by the coordinator and loaded by each worker process (which get the plugins' folders from it)."""
    from stemdesk.io.model_store import find_model

    shutil.rmtree(catalog / "album two")
    (catalog / "album one" / "second.flac").unlink()
    site = tmp_path / "site"
    folder = site / "plugged_models" / "plugged-4stem"
    shutil.copytree(find_model("tiny-4stem").folder, folder)
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "id": "plugged-4stem"}))
    (site / "plugin_plugged.py").write_text(
        "from pathlib import Path\n\n"
        "def register(api):\n"
        "    api.add_models_folder(Path(__file__).parent / 'plugged_models')\n"
    )
    info = site / "stemdesk_plugged-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stemdesk-plugged\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[stemdesk.plugins]\nplugged = plugin_plugged:register\n")
    monkeypatch.syspath_prepend(str(site))
    out, err = io.StringIO(), io.StringIO()
    command = ["batch", str(catalog), "-o", str(tmp_path / "out"), "--model", "plugged-4stem", "--bit-depth", "16"]
    code = main([*command, "--workers", "1"], out=out, err=err)
    assert code == 0, out.getvalue() + err.getvalue()
    (record,) = records(tmp_path / "out")
    assert record["status"] == "done" and record["model"] == "plugged-4stem" and record["null"]["bit_exact"]
    assert sorted(p.name for p in (tmp_path / "out" / "album one" / "first").glob("*.wav")) == [
        f"{stem}.wav" for stem in ("bass", "drums", "other", "vocals")
    ]


@contextlib.contextmanager
def long_batch(tmp_path):
    """A batch of one 10-minute song with the default model, one worker: yields (process, worker pid, output
    folder) once the worker runs; afterwards kills whatever of them is left."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sf.write(str(folder / "long.wav"), 0.1 * rng.standard_normal((600 * 44100, 2)).astype(np.float32), 44100)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "stemdesk", "batch", str(folder), "-o", str(out), "--model", "stemdesk-4stem"]
    process = subprocess.Popen(command + ["--workers", "1", "--threads-per-worker", "1"], stderr=subprocess.PIPE)
    worker = None
    try:
        deadline = time.monotonic() + 120
        while worker is None and time.monotonic() < deadline and process.poll() is None:
            found = subprocess.run(
                ["pgrep", "-P", str(process.pid), "-f", "spawn_main"], capture_output=True, text=True
            )
            worker = int(found.stdout.split()[0]) if found.stdout.split() else None
            time.sleep(0.2)
        assert worker is not None, "the batch never started a worker"
        yield process, worker, out
    finally:
        process.kill()
        process.wait()
        if worker is not None and Path(f"/proc/{worker}").exists():
            os.kill(worker, signal.SIGKILL)


def test_sigterm_ends_the_song_in_progress_at_once(tmp_path):
    """A long song is being separated when the batch gets SIGTERM (as from a closed terminal or a job scheduler):
    the worker is stopped, not waited for, and nothing half-written is left. Before, the batch waited for the song
    to finish (minutes, for the labeller's 14-minute tracks)."""
    with long_batch(tmp_path) as (process, worker, out):
        time.sleep(5)  # the worker has loaded the model and is separating: 600 s of audio takes it half a minute
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        assert process.returncode != 0
        assert not alive(worker)
    assert not list(out.rglob("*.wav")), "a half-separated song left stems behind"
    assert not any(p.name.startswith(".") and p.is_file() for p in out.rglob("*")), "a temporary file was left"


def test_a_worker_does_not_outlive_a_killed_batch(tmp_path):
    """kill -9 of the batch (an out-of-memory kill, a closed session) ends its worker too, instead of leaving it
    separating a song for nobody (found as an orphan using a core for minutes). Killed while the worker is still
    starting (importing torch, before it could ask to die with its parent) or while it separates, alike."""
    with long_batch(tmp_path) as (process, worker, _):
        time.sleep(3)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 90  # a loaded machine's worker may take that long to finish starting
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(worker), "the worker is still separating after its batch was killed"


def test_failures_are_retried_then_reported(catalog, tmp_path):
    (catalog / "album two" / "broken.wav").write_text("not audio")
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["batch", str(catalog), "-o", str(tmp_path / "out"), "--model", "tiny-4stem", "--retries", "2"],
        out=out,
        err=err,
    )
    assert code == 1
    assert "done 3, skipped 0, failed 1" in out.getvalue() and "broken.wav" in out.getvalue()
    attempts = [r for r in records(tmp_path / "out") if r["input"].endswith("broken.wav")]
    assert [r["attempt"] for r in attempts] == [1, 2, 3] and all(r["status"] == "failed" for r in attempts)
    assert "not a recognised audio format" in attempts[-1]["error"]


def test_a_song_whose_stems_do_not_null_is_a_failure_not_done(catalog, tmp_path, monkeypatch):
    """As `stemdesk separate` exits 3, a batch counts such a song as failed, keeps its stems to be looked at, does not
    retry it now (the same stems would come again) and redoes it on the next run instead of skipping it."""
    import stemdesk.export.stems as stems_module
    from stemdesk.jobs.batch import CatalogSong, SongWorker

    exact = stems_module.integer_stems

    def one_step_off(stems, mix, bits):
        ints = exact(stems, mix, bits)
        ints[0, :, ::1000] += 1  # a residual one step off here and there
        return ints

    out = tmp_path / "out"
    first = catalog / "album one" / "first.wav"
    worker = SongWorker(SETTINGS)  # in this process, where the bug is patched in
    monkeypatch.setattr(stems_module, "integer_stems", one_step_off)
    record = worker.run(CatalogSong(str(first), "album one/first"), str(out), 1)
    assert record["status"] == "failed" and record["retry"] is False
    assert "do not null" in record["error"] and "dBFS" in record["error"]
    assert all((out / "album one" / "first" / f"{s}.wav").is_file() for s in ("vocals", "drums", "bass", "other"))
    monkeypatch.setattr(stems_module, "integer_stems", exact)
    # the manifest holds that record: the next run separates the song again, and now it nulls
    (out / MANIFEST).write_text(json.dumps(record) + "\n")
    summary = run_batch(catalog, out, SETTINGS, workers=1)
    assert (summary.done, summary.skipped, summary.failed) == (3, 0, 0)
    redone = [r for r in records(out) if r["input"] == str(first)]
    assert [r["status"] for r in redone] == ["failed", "done"] and redone[-1]["null"]["passed"]


def test_manifest_input_and_paths_stay_inside_the_output(tmp_path, catalog):
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(
        json.dumps({"path": str(catalog / "album one" / "first.wav")})
        + "\n"
        + json.dumps({"path": "catalog/album two/third.wav"})
        + "\n"
    )
    out = tmp_path / "out"
    summary = run_batch(manifest, out, SETTINGS)
    assert summary.done == 2
    assert all(str(p.resolve()).startswith(str(out.resolve())) for p in out.rglob("*.wav"))


ray = pytest.importorskip("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path):
    """A real cluster on loopback: a head node and a second node, one CPU each."""
    port = free_port()
    # Ray's sockets live in its temporary folder, and a socket's path may not pass 107 bytes: the test's own
    # temporary folder is too deep for it, so Ray gets a short one of its own, removed afterwards.
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": str(temp)}
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]

    def ray_command(*argv: str) -> None:
        done = subprocess.run(ray_cli + list(argv), env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"ray {' '.join(argv)} failed: {done.stderr[-2000:]}"

    try:
        ray_command("start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}", *common)
        ray_command("start", f"--address=127.0.0.1:{port}", *common)
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        subprocess.run(ray_cli + ["stop", "--force"], env=env, capture_output=True, timeout=180)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_cluster_matches_local_and_survives_a_killed_worker(catalog, tmp_path, ray_cluster):
    for extra in range(3):  # more songs, so a worker can be killed while others are still queued
        shutil.copy(catalog / "album one" / "first.wav", catalog / "album two" / f"copy{extra}.wav")
    local = tmp_path / "local"
    run_batch(catalog, local, SETTINGS, workers=1)
    distributed = tmp_path / "ray"
    killed = []

    def kill_a_worker():
        # The first worker process seen is killed at once: it is still loading or separating, and every song is
        # still queued or running. (Waiting for the first finished song as well left a window of under a second on
        # a quiet machine, since the other five songs took well under one: it was missed in one CI run.)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            found = subprocess.run(["pgrep", "-f", "SongWorker"], capture_output=True, text=True).stdout.split()
            if found:
                os.kill(int(found[0]), signal.SIGKILL)
                killed.append(found[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    summary = run_batch(catalog, distributed, SETTINGS, workers=2, retries=3, ray_address=ray_cluster)
    killer.join()
    assert killed, "no Ray worker was found to kill"
    assert (summary.done, summary.failed) == (6, 0)
    local_files = sorted(p.relative_to(local) for p in local.rglob("*.wav"))
    assert local_files == sorted(p.relative_to(distributed) for p in distributed.rglob("*.wav"))
    for relative in local_files:
        assert (local / relative).read_bytes() == (distributed / relative).read_bytes()
    assert not list(distributed.rglob(".*.part.*"))
    nodes = {r["worker"].split(":")[0] for r in records(distributed) if r["status"] == "done"}
    assert nodes  # records say where each song ran


@pytest.mark.slow
def test_htdemucs_on_a_ray_cluster_writes_what_separate_writes(installed, tmp_path, ray_cluster):
    """The installed HTDemucs loads in the cluster's workers (from the user's models folder) like a shipped model."""
    catalog = tmp_path / "songs"
    catalog.mkdir()
    sf.write(str(catalog / "one.wav"), song(3.0, seed=4), 44100, subtype="PCM_16")
    sf.write(str(catalog / "two.wav"), song(2.0, rate=48000, seed=5), 48000, subtype="PCM_16")
    settings = BatchSettings(model="htdemucs", format="wav", bit_depth="16")
    summary = run_batch(catalog, tmp_path / "ray", settings, workers=2, retries=1, ray_address=ray_cluster)
    assert (summary.done, summary.failed) == (2, 0)
    assert all(r["null"]["bit_exact"] for r in records(tmp_path / "ray") if r["status"] == "done")
    for name in ("one", "two"):
        assert (
            main(
                [
                    "separate",
                    str(catalog / f"{name}.wav"),
                    "-o",
                    str(tmp_path / "cli"),
                    "--model",
                    "htdemucs",
                    "--bit-depth",
                    "16",
                    "--threads",
                    "1",
                ],
                io.StringIO(),
                io.StringIO(),
            )
            == 0
        )
        for stem in ("drums", "bass", "other", "vocals"):
            assert (tmp_path / "ray" / name / f"{stem}.wav").read_bytes() == (
                tmp_path / "cli" / name / f"{stem}.wav"
            ).read_bytes()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has the GPU the test asks for")
def test_asking_for_a_gpu_this_machine_lacks_is_said_before_any_worker_starts(catalog, tmp_path):
    err = io.StringIO()
    out = tmp_path / "out"
    code = main(
        ["batch", str(catalog), "-o", str(out), "--model", "tiny-4stem", "--device", "cuda"], io.StringIO(), err
    )
    assert code == 1
    assert "no CUDA GPU" in err.getvalue() and "--device cpu" in err.getvalue()
    assert not out.exists()


def test_an_unreachable_ray_cluster_is_said_plainly_and_at_once(catalog, tmp_path):
    port = free_port()  # nothing listens there
    err = io.StringIO()
    started = time.monotonic()
    code = main(
        ["batch", str(catalog), "-o", str(tmp_path / "out"), "--model", "tiny-4stem", "--ray", f"127.0.0.1:{port}"],
        io.StringIO(),
        err,
    )
    assert code == 1 and time.monotonic() - started < 30  # not Ray's minutes of retries
    message = err.getvalue()
    assert f"Cannot reach the Ray cluster at 127.0.0.1:{port}" in message and "ray start --head" in message
    assert ": ." not in message
