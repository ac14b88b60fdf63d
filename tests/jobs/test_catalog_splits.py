"""The community's models applied to stems, losing nothing: catalog models installed as their install makes them
(tiny stand-ins with random weights, `catalog_models`) split a stem as any split model does (`--split
vocals=<karaoke>` → vocals/lead, vocals/backing; `--split drums=<drumsep>` → the kit's six pieces), clean one up as
children that keep what was taken out (`--clean vocals=<de-reverb>` → vocals/dry, vocals/reverb), and a song of six
stems with two splits makes twelve leaves; every level adds up to its parent bit for bit, as the files read back
show and the certificate says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from catalog_models import KIT, community_models
from helpers import assert_stems_null, run

from stemdesk.io.stems import CERTIFICATE, find_stems


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def ints(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="int32", always_2d=True)[0].astype(np.int64)


def assert_adds_up(parent: Path, children: list[Path]) -> None:
    """Σ children = parent in integers (16- or 24-bit files read as int32: the same shift for each), and no child
    is silent."""
    assert np.array_equal(sum(ints(p) for p in children), ints(parent))
    assert all(np.abs(ints(p)).max() > 0 for p in children)


def test_six_stems_and_two_community_splits_make_twelve_leaves_that_null_at_every_level(
    song_file, tmp_path, monkeypatch
):
    models = community_models(tmp_path, monkeypatch, which=("karaoke", "drumsep", "six"))
    song = song_file(seconds=2.0, subtype="PCM_16")
    out = tmp_path / "out"
    code, text, err = run(
        "separate",
        song,
        "-o",
        out,
        "--model",
        models["six"],
        "--split",
        f"vocals={models['karaoke']}",
        "--split",
        f"drums={models['drumsep']}",
        "--bit-depth",
        "16",
    )
    assert code == 0, err
    folder = out / "song"
    assert f"vocals split by {models['karaoke']} into lead, backing" in text
    assert f"drums split by {models['drumsep']} into {', '.join(KIT)}" in text
    vocals = [folder / "vocals" / f"{c}.wav" for c in ("lead", "backing")]
    drums = [folder / "drums" / f"{piece}.wav" for piece in KIT]
    rest = [folder / f"{name}.wav" for name in ("bass", "other", "guitar", "piano")]
    leaves = vocals + drums + rest
    assert len(leaves) == 12 and all(p.is_file() for p in leaves)
    # each level, read back: the children add up to their parent, the stems and the leaves to the song
    assert_adds_up(folder / "vocals.wav", vocals)
    assert_adds_up(folder / "drums.wav", drums)
    assert_adds_up(song, [folder / f"{n}.wav" for n in ("drums", "bass", "other", "vocals", "guitar", "piano")])
    assert_adds_up(song, leaves)
    assert_stems_null(song, leaves, "16")  # and as `stemdesk nullcheck` measures it
    cert = json.loads((folder / CERTIFICATE).read_text())
    assert cert["tree_null"]["bit_exact"] and len(cert["tree_null"]["energy_share"]) == 12
    assert cert["splits"]["vocals"]["children"] == ["lead.wav", "backing.wav"]
    assert cert["splits"]["drums"]["children"] == [f"{piece}.wav" for piece in KIT]
    assert cert["splits"]["vocals"]["null"]["bit_exact"] and cert["splits"]["drums"]["null"]["bit_exact"]
    assert cert["splits"]["vocals"]["model"]["id"] == models["karaoke"]
    # a reader of the folder sees the tree: the leaves in place of their parents
    keys = [key for key, _ in find_stems(folder).leaves()]
    assert sorted(keys) == sorted(
        ["vocals/lead", "vocals/backing", *(f"drums/{p}" for p in KIT), "bass", "other", "guitar", "piano"]
    )


def test_a_clean_up_keeps_what_it_takes_out_as_a_child_and_nulls(song_file, tmp_path, monkeypatch):
    models = community_models(tmp_path, monkeypatch, which=("karaoke", "dereverb"))
    song = song_file(seconds=2.0, subtype="PCM_24")
    out = tmp_path / "out"
    code, text, err = run(
        "separate", song, "-o", out, "--model", "tiny-4stem", "--clean", f"vocals={models['dereverb']}"
    )
    assert code == 0, err
    folder = out / "song"
    children = [folder / "vocals" / "dry.wav", folder / "vocals" / "reverb.wav"]
    assert f"vocals split by {models['dereverb']} into dry, reverb" in text and "bit-exact" in text
    assert sf.info(str(children[0])).subtype == "PCM_24"
    assert_adds_up(folder / "vocals.wav", children)
    assert_adds_up(song, [*children, *(folder / f"{n}.wav" for n in ("drums", "bass", "other"))])
    cert = json.loads((folder / CERTIFICATE).read_text())
    assert cert["tree_null"]["bit_exact"] and cert["settings"]["cleans"] == ["vocals"]
    assert cert["settings"]["splits"] == {"vocals": models["dereverb"]}

    # what cannot run is refused before anything is written, saying what would
    refused = {
        ("--clean", f"vocals={models['karaoke']}"): f"{models['karaoke']} is not a clean-up",
        ("--split", f"drums={models['karaoke']}"): f"{models['karaoke']} splits vocals, not drums",
        ("--clean", "vocals"): "--clean takes PARENT=MODEL",
    }
    for (flag, value), message in refused.items():
        code, _, err = run("separate", song, "-o", tmp_path / "no", "--model", "tiny-4stem", flag, value)
        assert code != 0 and message in err, err
        assert not (tmp_path / "no").exists()
    both = ("--split", f"vocals={models['karaoke']}", "--clean", f"vocals={models['dereverb']}")
    code, _, err = run("separate", song, "-o", tmp_path / "no", "--model", "tiny-4stem", *both)
    assert code != 0 and "both split and cleaned" in err
    # a catalog model that splits a stem is not offered a whole song, and says how it is used
    code, _, err = run("separate", song, "-o", tmp_path / "no", "--model", models["karaoke"])
    assert code != 0 and f"--split vocals={models['karaoke']}" in err and not (tmp_path / "no").exists()


def test_the_api_splits_and_cleans_with_catalog_models(song_file, tmp_path, monkeypatch):
    import stemdesk

    models = community_models(tmp_path, monkeypatch, which=("karaoke", "dereverb"))
    song = song_file(seconds=1.5, subtype="PCM_16")
    made = stemdesk.separate(song, "tiny-4stem", tmp_path / "api", clean={"vocals": models["dereverb"]}, bit_depth=16)
    assert set(made.splits["vocals"]) == {"dry", "reverb"} and made.split_nulls["vocals"].bit_exact
    assert_adds_up(made.stems["vocals"], list(made.splits["vocals"].values()))
    made = stemdesk.separate(song, "tiny-4stem", tmp_path / "api2", split={"vocals": models["karaoke"]}, bit_depth=16)
    assert list(made.splits["vocals"]) == ["lead", "backing"] and made.split_nulls["vocals"].bit_exact
    # `stemdesk split` on a vocals file someone has
    stem = made.stems["vocals"]
    code, _, err = run("split", stem, "--model", models["karaoke"], "-o", tmp_path / "by-hand")
    assert code == 0, err
    assert_adds_up(stem, [tmp_path / "by-hand" / "vocals" / f"{c}.wav" for c in ("lead", "backing")])
