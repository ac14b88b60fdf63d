"""The model catalog and its installs, against a real HTTP server on 127.0.0.1 (http.server in a thread) serving a
small real checkpoint made here: a BS-RoFormer with random weights saved as Music-Source-Separation-Training saves
it (torch.save of its state dict), with its YAML. A test catalog (STEMDESK_CATALOG) points at the server.

What goes wrong on a user's network is made to happen: a connection cut half-way (the next install resumes with a
Range request and the result is byte-identical), a wrong checksum or size, a 404, a slow server and a cancel, a
partial file a crash left, a full disk, no connection at all, a file of the wrong architecture given by hand, a
config the importer refuses. Each ends with a message that says what to do, and nothing half-installed."""

from __future__ import annotations

import errno
import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
import torch
from file_server import Server, _one_thread_no_proxy, dead_url  # noqa: F401 (an autouse fixture)
from helpers import run

from stemdesk.core.cancel import CancelToken
from stemdesk.core.errors import Cancelled
from stemdesk.io import catalog, download
from stemdesk.io.model_import import msst_stems, read_config
from stemdesk.io.model_store import find_model, list_models, load_estimator, user_models_dir

MODEL_ID = "tiny-vocals"
FILE = "model_bs_roformer_ep_1_sdr_1.0.ckpt"
CHUNK = 8192
SMALL = dict(
    dim=16,
    depth=1,
    stereo=True,
    num_stems=1,
    time_transformer_depth=1,
    freq_transformer_depth=1,
    dim_head=8,
    heads=2,
    stft_n_fft=512,
    stft_hop_length=128,
    stft_win_length=512,
    mask_estimator_depth=1,
    freqs_per_bands=(2, 2, 2, 2, 4, 4, 8, 8, 16, 32, 177),
)


def msst_yaml(model: dict, extra: dict | None = None) -> str:
    """A config laid out as Music-Source-Separation-Training's, with its !!python/tuple tags."""
    lines = ["audio:", f"  chunk_size: {CHUNK}", "  num_channels: 2", "  sample_rate: 44100", "model:"]
    for key, value in {**model, **(extra or {})}.items():
        if isinstance(value, tuple):
            lines += [f"  {key}: !!python/tuple"] + [f"  - {v}" for v in value]
        else:
            lines.append(f"  {key}: {str(value).lower() if isinstance(value, bool) else value}")
    lines += ["training:", "  instruments:", "  - vocals", "  - other", "  target_instrument: vocals"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> bytes:
    """A BS-RoFormer vocal model from the reference package, random weights, saved as MSST saves it."""
    pytest.importorskip("bs_roformer")
    from bs_roformer.bs_roformer import BSRoformer

    torch.manual_seed(0)
    config = {k: v for k, v in SMALL.items()}
    model = BSRoformer(**config).eval()
    path = tmp_path_factory.mktemp("ckpt") / FILE
    torch.save(model.state_dict(), path)
    return path.read_bytes()


@pytest.fixture
def server():
    served = Server()
    yield served
    served.close()


def write_catalog(folder: Path, monkeypatch, **overrides) -> dict:
    """A one-model catalog (STEMDESK_CATALOG); ``overrides`` replace the entry's or its file's fields."""
    file_fields = {"file", "url", "size_bytes", "sha256", "sha256_prefix", "mirrors"}
    item = {"file": FILE, "url": "", "size_bytes": None, "sha256": None, "sha256_prefix": None, "source": "a test"}
    item.update({k: v for k, v in overrides.items() if k in file_fields})
    entry = {
        "id": MODEL_ID,
        "name": "Tiny vocals",
        "summary": "A tiny BS-RoFormer with random weights.",
        "stems": ["vocals", "other"],
        "architecture": "bs_roformer",
        "cannot_run": None,
        "publisher": {"name": "the tests", "page": "http://127.0.0.1/"},
        "config": {
            "file": "tiny.yaml",
            "url": "http://127.0.0.1/tiny.yaml",
            "sha256": None,
            "content": msst_yaml(SMALL),
            "source": "a test",
        },
        "files": [item],
        "checksum": "recorded at first install",
        "licence": "CC0 (the tests')",
        "licence_source": "http://127.0.0.1/licence",
        "training_data": "none: random weights",
        "quality": [],
        "speed": None,
    }
    entry.update({k: v for k, v in overrides.items() if k not in file_fields})
    path = folder / "catalog.json"
    path.write_text(json.dumps({"schema": 1, "models": [entry]}))
    monkeypatch.setenv(catalog.CATALOG_ENV, str(path))
    return entry


def install(*extra) -> tuple[int, str, str]:
    return run("models", "install", MODEL_ID, "--accept-license", *extra)


def nothing_installed() -> None:
    assert MODEL_ID not in {card.id for card in list_models()}
    models = user_models_dir()
    assert not models.exists() or not [p for p in models.iterdir() if p.name.startswith(".")]


def part_files() -> list[Path]:
    return sorted(catalog.downloads_dir().rglob("*.part*")) if catalog.downloads_dir().exists() else []


# --- installs ------------------------------------------------------------------------------------------------------


def test_install_downloads_checks_imports_and_records_the_checksum(tmp_path, monkeypatch, server, checkpoint):
    server.files["/w.ckpt"] = checkpoint
    write_catalog(tmp_path, monkeypatch, url=server.url("/w.ckpt"), size_bytes=len(checkpoint))
    code, out, err = install()
    assert code == 0, err
    assert f"--model {MODEL_ID}" in out and "CC0 (the tests')" in err  # the licence is shown before
    card = find_model(MODEL_ID)
    assert card.estimator == "bs_roformer" and card.sources == ["vocals", "other"]
    source = card.raw["source"]["files"][0]
    assert source["sha256"] == hashlib.sha256(checkpoint).hexdigest() and source["size"] == len(checkpoint)
    assert "recorded at this install" in source["sha256_checked"]
    assert card.raw["source"]["configs"][0]["sha256"] == hashlib.sha256(msst_yaml(SMALL).encode()).hexdigest()
    assert "CC0" in card.raw["licenses"]["weights"] and card.raw["training_data"] == "none: random weights"
    assert card.raw["speed"] is None
    estimator, _ = load_estimator(MODEL_ID)  # the weights load, checked against the card
    with torch.inference_mode():
        assert estimator(0.1 * torch.randn(1, 2, CHUNK)).shape == (1, 2, 2, CHUNK)
    assert part_files() == [] and not (catalog.downloads_dir() / MODEL_ID).exists()  # nothing left behind

    code, _, err = install()
    assert code == 1 and "already installed" in err and "Remove it first" in err


def test_a_cut_download_resumes_with_a_range_request_and_is_byte_identical(tmp_path, monkeypatch, server, checkpoint):
    server.files["/w.ckpt"] = checkpoint
    sha = hashlib.sha256(checkpoint).hexdigest()
    write_catalog(tmp_path, monkeypatch, url=server.url("/w.ckpt"), size_bytes=len(checkpoint), sha256=sha)
    cut = len(checkpoint) // 3
    server.cut = cut
    code, out, err = install()
    assert code == 1 and out == ""
    assert "ended after" in err and "resumes where it stopped" in err
    last = err.strip().splitlines()[-1]  # one line: what happened, and the way by hand
    assert "ended after" in last and f"--file {FILE}" in last
    nothing_installed()
    [part, record] = part_files()
    assert part.name == FILE + ".part" and part.stat().st_size == cut and record.name.endswith(".part.json")

    code, _, err = install()
    assert code == 0, err
    assert server.ranges("/w.ckpt") == [None, f"bytes={cut}-"]  # the server saw the resumed request
    assert find_model(MODEL_ID).raw["source"]["files"][0]["sha256"] == sha

    # the same, one level down, keeping the file: byte for byte what the server holds
    server.cut = 1000
    target = tmp_path / "copy" / FILE
    with pytest.raises(download.DownloadError):
        download.fetch(server.url("/w.ckpt"), target, size=len(checkpoint))
    fetched = download.fetch(server.url("/w.ckpt"), target, size=len(checkpoint))
    assert fetched.resumed_from == 1000 and target.read_bytes() == checkpoint and fetched.sha256 == sha


@pytest.mark.parametrize("wrong", ["sha256", "size"])
def test_a_wrong_checksum_or_size_is_refused_and_nothing_is_left(tmp_path, monkeypatch, server, checkpoint, wrong):
    server.files["/w.ckpt"] = checkpoint
    facts = {"sha256": "0" * 64} if wrong == "sha256" else {"size_bytes": len(checkpoint) + 1}
    write_catalog(tmp_path, monkeypatch, url=server.url("/w.ckpt"), **facts)
    code, _, err = install()
    assert code == 1
    if wrong == "sha256":
        assert "not 000000000000" in err and "damaged or another file" in err and "deleted" in err
    else:
        assert f"with {len(checkpoint):,} bytes, not the {len(checkpoint) + 1:,}" in err
    nothing_installed()
    assert part_files() == []


def test_a_missing_file_and_no_connection_say_what_to_fetch_by_hand(tmp_path, monkeypatch, server):
    write_catalog(tmp_path, monkeypatch, url=server.url("/moved.ckpt"))
    code, _, err = install()
    assert code == 1 and "HTTP 404" in err and "moved or removed" in err
    assert f"stemdesk models install {MODEL_ID} --file {FILE}" in err
    nothing_installed()

    url = dead_url("/w.ckpt")
    write_catalog(tmp_path, monkeypatch, url=url)
    code, _, err = install()
    last = err.strip().splitlines()[-1]
    assert code == 1 and "Could not reach 127.0.0.1" in last and f"Or fetch {url}" in last and f"--file {FILE}" in last
    nothing_installed()

    # a config that is not in the catalog must be fetched by hand too
    write_catalog(
        tmp_path, monkeypatch, url=url, config={"file": "c.yaml", "url": dead_url("/c.yaml"), "content": None}
    )
    code, _, err = install()
    assert code == 1 and f"--file {FILE} --config c.yaml" in err


def test_a_slow_download_stops_at_cancel_and_resumes_later(tmp_path, monkeypatch, server, checkpoint):
    from stemdesk.session import tasks

    server.files["/w.ckpt"] = checkpoint
    server.delay = 0.02  # 1 kB every 20 ms: minutes for the whole file
    write_catalog(tmp_path, monkeypatch, url=server.url("/w.ckpt"), size_bytes=len(checkpoint))
    token, failure = CancelToken(), []
    task = tasks.install_model(MODEL_ID)
    worker = threading.Thread(target=lambda: failure.append(_raised(lambda: task.run(cancel=token))))
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    token.cancel()
    worker.join(10)
    assert not worker.is_alive() and time.monotonic() - started < 2.0
    assert isinstance(failure[0], Cancelled)
    nothing_installed()
    [part, _] = part_files()
    assert 0 < part.stat().st_size < len(checkpoint)  # kept: the next install resumes it
    time.sleep(0.1)  # the server notices the closed connection

    server.delay = 0.0
    code, _, err = install()
    assert code == 0, err
    first, again = server.ranges("/w.ckpt")
    assert first is None and again is not None and again != "bytes=0-"  # resumed, not fetched from the start


def _raised(call) -> BaseException | None:
    try:
        call()
    except BaseException as error:  # noqa: BLE001 - the test inspects what the worker raised
        return error
    return None


def test_a_partial_file_a_crash_left_is_resumed_or_discarded(tmp_path, monkeypatch, server, checkpoint):
    server.files["/w.ckpt"] = checkpoint
    sha = hashlib.sha256(checkpoint).hexdigest()
    url = server.url("/w.ckpt")
    target = tmp_path / "d" / FILE
    target.parent.mkdir()

    def crashed(data: bytes, record_url: str, etag: str | None) -> None:
        download.part_path(target).write_bytes(data)
        download._record_path(target).write_text(json.dumps({"url": record_url, "etag": etag}))

    etag = f'"{sha[:16]}"'
    crashed(checkpoint[:5000], url, etag)  # the same file, cut: resumed
    assert download.fetch(url, target, sha256=sha).resumed_from == 5000
    assert server.requests[-1] == ("/w.ckpt", "bytes=5000-", etag) and target.read_bytes() == checkpoint

    target.unlink()
    crashed(b"x" * 5000, url, '"an older version"')  # the server's file changed since: If-Range gets it whole
    fetched = download.fetch(url, target, sha256=sha)
    assert fetched.resumed_from == 0 and target.read_bytes() == checkpoint

    target.unlink()
    crashed(checkpoint[:5000], "http://elsewhere.invalid/w.ckpt", etag)  # another address: discarded unasked
    assert download.fetch(url, target, sha256=sha).resumed_from == 0 and server.requests[-1][1] is None

    target.unlink()
    crashed(b"x" * 5000, url, etag)  # damaged bytes the server cannot know of: the sha256 finds them
    with pytest.raises(download.DownloadError, match="damaged or another file"):
        download.fetch(url, target, sha256=sha)
    assert not download.part_path(target).exists() and not target.exists()
    assert download.fetch(url, target, sha256=sha).resumed_from == 0  # and the next try starts afresh

    target.unlink()
    crashed(checkpoint[:5000], url, None)  # no ETag to send with If-Range and no checksum: started afresh
    assert download.fetch(url, target).resumed_from == 0 and server.requests[-1][1] is None

    target.unlink()
    crashed(checkpoint + b"more", url, etag)  # longer than the file: not a part of it
    assert download.fetch(url, target, size=len(checkpoint)).resumed_from == 0


def test_a_full_disk_says_what_to_do_and_leaves_nothing(tmp_path, monkeypatch, server, checkpoint):
    server.files["/w.ckpt"] = checkpoint
    write_catalog(tmp_path, monkeypatch, url=server.url("/w.ckpt"), size_bytes=len(checkpoint))
    real_open = open

    class FullDisk:
        """A file whose disk fills after 20 kB."""

        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 20_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def filling_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return FullDisk(handle) if str(path).endswith(".part") and "b" in mode and "r" not in mode else handle

    monkeypatch.setattr(download, "open", filling_open, raising=False)
    code, _, err = install()
    assert code == 1 and "is full" in err and "free some space there and try again" in err
    assert "nothing is left behind" in err and f"{len(checkpoint) / 1e6:,.1f} MB are needed" in err
    nothing_installed()
    assert part_files() == []


def test_a_file_fetched_by_hand_is_checked_against_the_catalog(tmp_path, monkeypatch, checkpoint):
    # the catalog's address is dead: --file installs without the network
    write_catalog(tmp_path, monkeypatch, url=dead_url("/w.ckpt"), sha256=hashlib.sha256(checkpoint).hexdigest())
    fetched = tmp_path / "Downloads" / FILE
    fetched.parent.mkdir()
    fetched.write_bytes(checkpoint[:-10])
    code, _, err = install("--file", fetched)
    assert code == 1 and "incomplete" not in err and "damaged or another file" in err and FILE in err
    nothing_installed()
    fetched.write_bytes(checkpoint)
    code, out, err = install("--file", fetched)
    assert code == 0, err
    card = find_model(MODEL_ID)
    assert card.raw["source"]["files"][0]["installed_from"] == str(fetched) and fetched.exists()
    assert "the catalog's sha256" in card.raw["source"]["files"][0]["sha256_checked"]


def test_a_file_gone_from_its_publisher_comes_from_its_mirror_checked_the_same(
    tmp_path, monkeypatch, server, checkpoint
):
    sha = hashlib.sha256(checkpoint).hexdigest()
    publisher, mirror = server.url("/releases/w.ckpt"), server.url("/mirror/w.ckpt")
    write_catalog(tmp_path, monkeypatch, url=publisher, sha256=sha, mirrors=[{"url": mirror, "source": "a test"}])

    # a download cut at the publisher's address resumes there: the mirror is not asked
    server.files["/releases/w.ckpt"], server.files["/mirror/w.ckpt"] = checkpoint, checkpoint
    server.cut = len(checkpoint) // 3
    code, _, err = install()
    assert code == 1 and "resumes where it stopped" in err
    assert [path for path, *_ in server.requests] == ["/releases/w.ckpt"]
    nothing_installed()

    # the publisher's release is gone, and the mirror serves other bytes: refused, both named, nothing left
    del server.files["/releases/w.ckpt"]
    server.files["/mirror/w.ckpt"] = checkpoint[:-1] + b"x"
    code, _, err = install()
    assert code == 1 and "HTTP 404" in err and "Its mirror failed too" in err and "damaged or another file" in err
    assert f"Or fetch {publisher} (or its mirror {mirror}) on a machine with a connection" in err
    nothing_installed()
    assert part_files() == []

    # the mirror holds the publisher's bytes: installed, and the card says where they came from
    server.files["/mirror/w.ckpt"] = checkpoint
    code, _, err = install()
    assert code == 0, err
    source = find_model(MODEL_ID).raw["source"]["files"][0]
    assert source["url"] == publisher and source["downloaded_from"] == mirror and source["sha256"] == sha
    assert [path for path, *_ in server.requests][-2:] == ["/releases/w.ckpt", "/mirror/w.ckpt"]


def test_a_config_given_by_hand_is_taken_when_it_holds_the_catalogs_settings(tmp_path, monkeypatch, checkpoint):
    text = msst_yaml(SMALL)
    config = {"file": "tiny.yaml", "url": dead_url("/tiny.yaml"), "content": text, "source": "a test"}
    config["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    write_catalog(tmp_path, monkeypatch, url=dead_url("/w.ckpt"), config=config)
    weights = tmp_path / FILE
    weights.write_bytes(checkpoint)
    other = tmp_path / "other.yaml"
    other.write_text(msst_yaml({**SMALL, "dim": 32}))
    code, _, err = install("--file", weights, "--config", other)
    assert code == 1 and "is not the config the catalog names" in err
    nothing_installed()
    # the same settings laid out otherwise, with its own inference defaults, as copies of a config often are
    copy = tmp_path / "copy.yaml"
    copy.write_text(
        "# as another tool keeps it\ninference:\n  num_overlap: 2\n"
        + text.replace("  num_channels: 2\n", "").replace("audio:\n", "audio:\n  num_channels: 2\n")
    )
    assert copy.read_bytes() != text.encode()
    code, _, err = install("--file", weights, "--config", copy)
    assert code == 0, err
    assert find_model(MODEL_ID).raw["source"]["configs"][0]["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()


def test_a_file_of_another_architecture_given_by_hand_is_named_as_such(tmp_path, monkeypatch):
    pytest.importorskip("demucs")
    pytest.importorskip("omegaconf")
    from fractions import Fraction

    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    small = dict(channels=8, depth=3, nfft=2048, bottom_channels=16, t_layers=2, t_heads=2, dconv_mode=3)
    demucs = HTDemucs(sources=["drums", "bass", "other", "vocals"], segment=Fraction(8192, 44100), **small)
    save_with_checksum(serialize_model(demucs, OmegaConf.create({"epochs": 1})), tmp_path / "htdemucs.th")
    wrong = next(tmp_path.glob("htdemucs-*.th"))
    write_catalog(tmp_path, monkeypatch, url=dead_url("/w.ckpt"))  # no checksum published: the importer tells
    code, _, err = install("--file", wrong)
    assert code == 1
    assert f'"{wrong.name}" holds HTDemucs weights, but {MODEL_ID} is a BS-RoFormer' in err
    assert f"not the file the catalog names ({FILE}" in err
    nothing_installed()

    noise = tmp_path / FILE
    noise.write_bytes(b"<html>Sign in to download</html>")
    code, _, err = install("--file", noise)
    assert code == 1 and "not a PyTorch checkpoint" in err and "check that this is that file" in err
    nothing_installed()


def test_a_config_the_importer_refuses_stops_before_the_download(tmp_path, monkeypatch, server, checkpoint):
    server.files["/w.ckpt"] = checkpoint
    refused = {"file": "c.yaml", "url": "x", "content": msst_yaml(SMALL, {"linear_transformer_depth": 1})}
    write_catalog(tmp_path, monkeypatch, url=server.url("/w.ckpt"), config=refused)
    code, _, err = install()
    assert code == 1 and "linear_transformer_depth=1" in err and "does not" in err and "Nothing was downloaded" in err
    assert server.requests == []  # the weights were never asked for
    nothing_installed()

    mel = {"file": "c.yaml", "url": "x", "content": msst_yaml({**SMALL, "num_bands": 8})}
    del_bands = mel["content"].replace("freqs_per_bands", "unused_bands")
    write_catalog(tmp_path, monkeypatch, url=server.url("/w.ckpt"), config={**mel, "content": del_bands})
    code, _, err = install()
    assert code == 1 and "describes Mel-RoFormer, but the catalog says BS-RoFormer" in err

    # a config that passes the first look but does not fit the weights: the download is kept for a fixed catalog
    wider = {"file": "c.yaml", "url": "x", "content": msst_yaml({**SMALL, "dim": 32})}
    write_catalog(tmp_path, monkeypatch, url=server.url("/w.ckpt"), config=wider)
    code, _, err = install()
    assert code == 1 and "downloaded and checked, but StemDesk could not import it" in err and "does not fit" in err
    assert "The catalog entry needs fixing" in err and (catalog.downloads_dir() / MODEL_ID / FILE).is_file()
    nothing_installed()


def test_a_model_stemdesk_cannot_run_is_refused_before_anything_is_fetched(tmp_path, monkeypatch, server):
    why = "it is a bag of four networks, which StemDesk does not combine yet"
    write_catalog(tmp_path, monkeypatch, url=server.url("/w.ckpt"), cannot_run=why, config=None)
    code, _, err = install()
    assert code == 1 and "cannot be installed yet" in err and why in err
    assert server.requests == []


def test_without_accepting_the_licence_a_script_installs_nothing(tmp_path, monkeypatch, server, checkpoint):
    server.files["/w.ckpt"] = checkpoint
    write_catalog(tmp_path, monkeypatch, url=server.url("/w.ckpt"))
    code, _, err = run("models", "install", MODEL_ID)  # stdin is not a terminal under pytest
    assert code == 1 and "--accept-license" in err and "CC0 (the tests')" in err
    assert server.requests == []


# --- the shipped catalog -------------------------------------------------------------------------------------------


def test_the_shipped_catalog_states_its_facts_and_its_configs_pass_the_importer(monkeypatch, tmp_path):
    monkeypatch.delenv(catalog.CATALOG_ENV, raising=False)
    entries = catalog.load_catalog()
    kinds = {entry.architecture for entry in entries.values()}
    assert {"htdemucs", "bs_roformer", "mel_band_roformer", "mdx23c"} <= kinds
    assert {"htdemucs-ft", "htdemucs-6s", "mel-roformer-karaoke", "mdx23c-drumsep"} <= set(entries)
    assert entries["htdemucs-ft"].runs and entries["mdx23c-drumsep"].runs and entries["htdemucs-6s"].runs
    assert len(entries["htdemucs-ft"].files) == 4 and entries["htdemucs-ft"].config is not None  # a bag, its YAML
    for entry in entries.values():
        assert entry.licence and entry.licence_source.startswith("https://") and entry.training_data
        # measured by StemDesk (benchmarks/catalog_speed.py), never copied: null, or a song's minutes on a named CPU
        if entry.speed is not None:
            assert entry.speed["measured_by"].startswith("benchmarks/catalog_speed.py") and entry.speed["cpu"]
            assert (
                set(entry.speed["minutes_by_threads"]) == {"1", "2"} == set(entry.speed["publisher_minutes_by_threads"])
            )
        assert entry.checksum
        for quality in entry.quality:
            assert quality["source"] == "the file name" or quality["source"].startswith("https://")
        for item in entry.files:
            assert item.url.startswith("https://") and item.source
            assert item.sha256 is None or (len(item.sha256) == 64 and int(item.sha256, 16) >= 0)
            assert item.sha256_prefix is None or item.file.split("-")[1].startswith(item.sha256_prefix)
        if entry.config is not None and entry.config.content is not None:
            path = tmp_path / entry.config.file
            path.write_text(entry.config.content)
            assert hashlib.sha256(entry.config.content.encode()).hexdigest() == entry.config.sha256
            catalog._check_config(entry, path)  # what the importer would refuse, it refuses here first
            if entry.architecture != "htdemucs":  # the stems listed are the ones its config names
                assert msst_stems(read_config(path), path) == entry.stems, entry.id
            if entry.config.content_source:  # a copy distributed with the model: said where it was read
                assert entry.config.content_source.startswith("https://")


def test_the_speed_shown_is_the_precision_stemdesk_runs_on_the_cpu_measured(tmp_path, monkeypatch):
    speed = {
        "song_seconds": 180.0,
        "minutes_by_threads": {"1": 3.0, "2": 2.0},
        "bfloat16_minutes_by_threads": {"1": 2.0, "2": 1.2},
        "publisher_minutes_by_threads": {"1": 4.0, "2": 2.5},
        "cpu": "A CPU",
        "measured_by": "benchmarks/catalog_speed.py",
    }
    write_catalog(tmp_path, monkeypatch, url="http://127.0.0.1/w.ckpt", speed={**speed, "precision": "fp32"})
    assert catalog.load_catalog()[MODEL_ID].speed_text() == (
        "a 3-minute song in 3 min on 1 thread, 2 min on 2 threads (the publisher's code: 4 and 2.5); A CPU"
    )
    write_catalog(tmp_path, monkeypatch, url="http://127.0.0.1/w.ckpt", speed={**speed, "precision": "bf16"})
    assert catalog.load_catalog()[MODEL_ID].speed_text() == (
        "a 3-minute song in 2 min on 1 thread, 1.2 min on 2 threads, in bfloat16 as StemDesk runs it on that CPU "
        "(the publisher's code: 4 and 2.5); A CPU"
    )
