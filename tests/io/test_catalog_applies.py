"""How a catalog model applies to a stem (its entry's ``applies_to`` and ``removes``) and what its install writes
into the model's card: a split of that stem whose children are the model's stems under the names the catalog gives
them, so the split machinery takes it as it is. Tiny stand-ins with random weights are installed through the real
install path (`catalog_models`); entries that could not add up to their parent are refused when the catalog is
read, and a config whose stems are not those mapped is refused before the weights are looked at."""

from __future__ import annotations

import json

import pytest
import torch
from catalog_models import DEREVERB, KARAOKE, community_models, entry, install, mel_roformer, write_catalog
from helpers import run

from stemdesk.core.errors import ModelError
from stemdesk.io import catalog
from stemdesk.io.model_store import find_model, list_models, load_estimator


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_the_shipped_catalog_says_how_its_community_models_apply_to_stems(monkeypatch):
    monkeypatch.delenv(catalog.CATALOG_ENV, raising=False)
    entries = catalog.load_catalog()
    karaoke = entries["mel-roformer-karaoke"].applies_to
    # the karaoke model's "karaoke" is everything but the lead vocal: on a vocals stem, the backing vocals
    assert karaoke == catalog.Application("vocals", {"lead": "other", "backing": "karaoke"})
    drumsep = entries["mdx23c-drumsep"]
    assert drumsep.applies_to == catalog.Application("drums", {s: s for s in drumsep.stems or []})
    assert list(drumsep.applies_to.children) == ["kick", "snare", "toms", "hh", "ride", "crash"]
    dereverb = entries["mel-roformer-dereverb-anvuew"].applies_to
    assert dereverb is not None and list(dereverb.children) == ["dry", "reverb"] and dereverb.removes == "reverb"
    denoise = entries["mel-roformer-denoise-aufr33"].applies_to
    assert denoise is not None and list(denoise.children) == ["clean", "noise"] and denoise.removes == "noise"
    code, out, _ = run("models", "available")  # what a producer reads before installing
    listed = " ".join(out.split())
    assert code == 0
    assert (
        "On a stem: --split vocals=mel-roformer-karaoke: vocals/lead (its other), vocals/backing (its karaoke)"
        in listed
    )
    assert (
        "--split drums=mdx23c-drumsep: drums/kick, drums/snare, drums/toms, drums/hh, drums/ride, drums/crash" in listed
    )
    assert "--clean vocals=mel-roformer-dereverb-anvuew: vocals/dry (its noreverb), vocals/reverb," in listed
    for model_id in ("htdemucs-6s", "mel-roformer-vocals-kj", "bs-roformer-vocals-viperx"):
        assert entries[model_id].applies_to is None  # models of whole songs
    for item in entries.values():
        if item.applies_to is not None:
            assert item.applies_to.parent in ("vocals", "drums", "bass", "other")
            assert item.raw.get("applies_to_source")


@pytest.mark.parametrize(
    "applies_to, removes, message",
    [
        ({"vocals": {"lead": "other"}}, None, "fewer than two children"),
        ({"vocals": {"lead": "other", "backing": "other"}}, None, "to two children"),
        ({"vocals": {"lead": "other", "backing": "karaoke"}, "drums": {"a": "b", "c": "d"}}, None, "not one stem"),
        ({"vocals": {"lead": "other", "back/ing": "karaoke"}}, None, "cannot be a file name"),
        ({"vocals": {"master": "other", "backing": "karaoke"}}, None, "the mixer keeps"),
        ({"vocals": {"lead": "other", "backing": "vocals"}}, None, "the catalog maps"),
        ({"vocals": {"lead": "other", "backing": "karaoke"}}, "reverb", "none of its children"),
        ({"vocals": {"lead": "other", "backing": "karaoke"}}, ["lead"], "none of its children"),
        (None, "reverb", "no applies_to"),
    ],
)
def test_an_application_that_could_not_add_up_is_refused_when_the_catalog_is_read(
    tmp_path, monkeypatch, applies_to, removes, message
):
    made = entry("tiny-karaoke", "mel_band_roformer", tmp_path / "k.ckpt", ["karaoke", "other"], "x", applies_to)
    if removes is not None:
        made["removes"] = removes
    write_catalog(tmp_path / "catalog.json", [made], monkeypatch)
    with pytest.raises(ModelError, match=message) as raised:
        catalog.load_catalog()
    assert "Fix the catalog file" in str(raised.value)


def test_the_install_writes_the_split_into_the_card(tmp_path, monkeypatch):
    models = community_models(tmp_path, monkeypatch, which=("karaoke", "dereverb"))
    card = find_model(models["karaoke"])
    assert card.split_parent == "vocals" and card.sources == ["lead", "backing"]
    assert card.outputs == {"lead": ["other"], "backing": ["karaoke"]}
    assert card.raw["split"]["children"] == {"lead": "other", "backing": "karaoke"}
    assert "removes" not in card.raw["split"]
    estimator, _ = load_estimator(card)  # the card's outputs are checked against the network's own stems
    assert list(estimator.sources) == ["karaoke", "other"]
    assert card.raw["catalog"]["id"] == models["karaoke"]
    dereverb = find_model(models["dereverb"])
    assert dereverb.sources == ["dry", "reverb"] and dereverb.raw["split"]["removes"] == "reverb"
    assert dereverb.outputs == {"dry": ["noreverb"], "reverb": ["reverb"]}
    # `stemdesk models` lists them under Split; the install said how to use each
    code, out, _ = run("models")
    assert code == 0 and models["karaoke"] in out.split("Split models")[1]


def test_install_says_how_a_split_or_a_clean_up_is_used(tmp_path, monkeypatch):
    ckpt, text = mel_roformer(tmp_path, "dereverb", ["noreverb", "reverb"], seed=2)
    made = entry("tiny-dereverb", "mel_band_roformer", ckpt, None, text, DEREVERB, removes="reverb")
    write_catalog(tmp_path / "catalog.json", [made], monkeypatch)
    code, out, err = install("tiny-dereverb", ckpt)
    assert code == 0, err
    assert "stems dry reverb" in out and "Use it with stemdesk separate SONG --clean vocals=tiny-dereverb" in out


def test_a_config_whose_stems_are_not_those_mapped_is_refused_before_the_weights(tmp_path, monkeypatch):
    ckpt, text = mel_roformer(tmp_path, "vocals", ["vocals", "other"])
    made = entry("tiny-karaoke", "mel_band_roformer", ckpt, None, text, KARAOKE)
    write_catalog(tmp_path / "catalog.json", [made], monkeypatch)
    code, _, err = install("tiny-karaoke", tmp_path / "absent.ckpt")  # never looked at
    assert code == 1 and "its stems are vocals, other, but the catalog maps other, karaoke onto vocals" in err
    assert "nothing was downloaded" in err and "does not exist" not in err
    assert "tiny-karaoke" not in {c.id for c in list_models()}


def test_a_model_installed_before_gets_its_split_from_install_without_a_download(tmp_path, monkeypatch, song_file):
    ckpt, text = mel_roformer(tmp_path, "karaoke", ["karaoke", "other"], seed=1)
    before = entry("tiny-karaoke", "mel_band_roformer", ckpt, ["karaoke", "other"], text)  # no applies_to yet
    write_catalog(tmp_path / "catalog.json", [before], monkeypatch)
    assert install("tiny-karaoke", ckpt)[0] == 0
    old = find_model("tiny-karaoke")
    assert old.split_parent is None and old.sources == ["karaoke", "other"]

    write_catalog(tmp_path / "catalog.json", [{**before, "applies_to": KARAOKE}], monkeypatch)
    song = song_file(seconds=1.0)
    split = ("--split", "vocals=tiny-karaoke")
    code, _, err = run("separate", song, "-o", tmp_path / "out", "--model", "tiny-4stem", *split)
    assert code != 0 and "run `stemdesk models install tiny-karaoke` once" in err
    assert not (tmp_path / "out").exists()

    ckpt.unlink()  # nothing is downloaded or read again: the weights installed stay
    code, out, err = install("tiny-karaoke")
    assert code == 0, err
    assert "Use it with stemdesk separate SONG --split vocals=tiny-karaoke" in out
    card = find_model("tiny-karaoke")
    assert card.split_parent == "vocals" and card.sources == ["lead", "backing"]
    assert card.weights_sha256 == old.weights_sha256 and card.raw["source"] == old.raw["source"]
    assert json.loads((card.folder / "card.json").read_text())["split"]["parent"] == "vocals"
    code, _, err = run("separate", song, "-o", tmp_path / "out", "--model", "tiny-4stem", *split)
    assert code == 0, err
    assert (tmp_path / "out" / "song" / "vocals" / "lead.wav").is_file()
    code, _, err = install("tiny-karaoke")  # now it is as the catalog says: installed
    assert code == 1 and "already installed" in err
