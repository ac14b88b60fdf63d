"""`stemdesk models available` and the catalog's side of `stemdesk models install`: what is listed (the shipped
catalog's models with their stems, size, licence, speed and whether they are installed), the answers that need no
download, and that listing loads no heavy library. The installs themselves, against a real HTTP server, are in
tests/io/test_catalog.py."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import run

from stemdesk.io import catalog


def test_available_lists_the_catalog_with_what_a_producer_decides_on(monkeypatch):
    monkeypatch.delenv(catalog.CATALOG_ENV, raising=False)
    code, out, _ = run("models", "available")
    assert code == 0
    entries = catalog.load_catalog()
    for entry in entries.values():
        assert f"\n{entry.id}" in out
    block = out.split("\nmel-roformer-vocals-kj", 1)[1].split("\n", 1)[1]
    first = " ".join(block.split("\n    ")[:5])
    assert "Stems: vocals other" in first and "913 MB" in first and "licence: not stated" in first
    assert "speed: a 3-minute song in " in first and "(the publisher's code: " in first  # benchmarks/catalog_speed.py
    assert "vocals 10.98 (SDR, dB; MVSep Multisong dataset)" in first
    assert "\nhtdemucs-ft\n" in out and "cannot run it yet" not in out  # the bag of four runs (#80)
    assert "\nmdx23c-drumsep\n" in out  # MDX23C runs (stemdesk/core/estimators/mdx23c.py)
    assert "[installed]" not in out
    assert "htdemucs\n" in out and "spleeter-2stem\n" in out  # the registry packages too
    code, out, _ = run("models")
    assert code == 0 and "`stemdesk models available`" in out


def test_an_installed_catalog_model_is_marked_so(tmp_path, monkeypatch):
    models = tmp_path / "models"
    (models / "mel-roformer-karaoke").mkdir(parents=True)
    card = {
        "id": "mel-roformer-karaoke",
        "estimator": "mel_band_roformer",
        "config": {},
        "sources": ["karaoke", "other"],
        "sample_rate": 44100,
        "weights_sha256": "0" * 64,
        "training_data": "not stated",
        "licenses": {},
    }
    (models / "mel-roformer-karaoke" / "card.json").write_text(json.dumps(card))
    monkeypatch.setenv("STEMDESK_MODELS_PATH", str(models))
    code, out, _ = run("models", "available")
    assert code == 0 and "mel-roformer-karaoke  [installed]" in out
    code, _, err = run("models", "install", "mel-roformer-karaoke", "--accept-license")
    assert code == 1 and "already installed" in err


def cannot_run_catalog(tmp_path, monkeypatch) -> None:
    """A test catalog of one model StemDesk cannot run (the shipped catalog has none since htdemucs-ft runs)."""
    made = {
        "id": "some-bag",
        "name": "A bag of two",
        "summary": "Two networks.",
        "stems": ["vocals", "other"],
        "architecture": "htdemucs",
        "cannot_run": "it is a bag of two networks StemDesk does not combine",
        "files": [{"file": "a.th", "url": "http://127.0.0.1:9/a.th", "source": "a test"}],
        "licence": "CC0",
    }
    (tmp_path / "catalog.json").write_text(json.dumps({"schema": 1, "models": [made]}))
    monkeypatch.setenv(catalog.CATALOG_ENV, str(tmp_path / "catalog.json"))


def test_install_answers_without_downloading_what_it_cannot_do(monkeypatch, tmp_path):
    cannot_run_catalog(tmp_path, monkeypatch)
    code, out, _ = run("models", "available")
    assert code == 0 and "some-bag  [StemDesk cannot run it yet]" in out and "does not combine." in out
    code, _, err = run("models", "install", "some-bag", "--accept-license")
    assert code == 1 and "bag of two networks" in err and "Nothing was downloaded" in err
    monkeypatch.delenv(catalog.CATALOG_ENV)
    code, _, err = run("models", "install", "no-such-model")
    assert code == 1 and "mel-roformer-vocals-kj" in err and "`stemdesk models available`" in err
    code, _, err = run("models", "install", "htdemucs", "--file", "x.th", "--accept-license")
    assert code == 1 and "--tarball" in err
    code, _, err = run("models", "install", "mel-roformer-karaoke", "--tarball", "x.tgz", "--accept-license")
    assert code == 1 and "--file" in err


def test_listing_what_can_be_installed_loads_no_heavy_library():
    probe = (
        "import sys\nfrom stemdesk.cli import main\ncode = main(['models', 'available'])\n"
        "heavy = [m for m in ('torch', 'numpy', 'soundfile', 'pedalboard', 'PySide6', 'ssl') if m in sys.modules]\n"
        "print('loaded:', *heavy, file=sys.stderr)\nsys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "mel-roformer-vocals-kj" in done.stdout and done.stderr.splitlines()[-1] == "loaded:"


def test_a_catalog_model_asked_for_before_it_is_installed_says_how_to_install_it(monkeypatch, song_file, tmp_path):
    monkeypatch.delenv(catalog.CATALOG_ENV, raising=False)
    song = song_file(seconds=1.0)
    for flag, model in (
        ("--split", "vocals=mel-roformer-karaoke"),
        ("--clean", "vocals=mel-roformer-dereverb-anvuew"),
        ("--model", "mel-roformer-vocals-kj"),
    ):
        model_id = model.rpartition("=")[2]
        code, _, err = run("separate", song, flag, model, "-o", song.parent / "stems")
        assert code == 1 and f"'{model_id}' is not installed. It is in the model catalog" in err
        assert "first shows its licence, which you must accept" in err
        assert err.rstrip().endswith(f"Install it with `stemdesk models install {model_id}`.")
    assert "which splits vocals into lead and backing" in run("split", song, "--model", "mel-roformer-karaoke")[2]
    code, _, err = run("separate", song, "--model", "htdemucs-ft", "-o", song.parent / "stems")
    assert code == 1 and "'htdemucs-ft' is not installed. It is in the model catalog" in err
    assert err.rstrip().endswith("Install it with `stemdesk models install htdemucs-ft`.")
    cannot_run_catalog(tmp_path, monkeypatch)
    code, _, err = run("separate", song, "--model", "some-bag", "-o", song.parent / "stems")
    assert code == 1 and "'some-bag' is not installed, and cannot be yet" in err and "bag of two" in err
    assert "stemdesk models install some-bag" not in err
    assert not (song.parent / "stems").exists()
