"""Demucs's bags of models (htdemucs_ft: four HTDemucs, each weighted for one stem): four tiny HTDemucs with random
weights built with the ``demucs`` package's own classes and saved as Demucs publishes them (serialised, named with
their checksum), a bag YAML in Demucs's remote format; imported, compared with demucs's own ``apply_model`` on a
``BagOfModels`` over a whole excerpt of several segments, separated through the command line (the stems null),
and installed from a test catalog served on 127.0.0.1. Bags StemDesk cannot combine are refused saying what to do."""

from __future__ import annotations

import hashlib
import json
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from file_server import Server
from helpers import assert_stems_null, run

from stemdesk.core.chunker import Chunker
from stemdesk.core.errors import ModelError
from stemdesk.core.estimators import build_estimator
from stemdesk.core.estimators.bag import Bag
from stemdesk.core.separator import Separator
from stemdesk.io import catalog
from stemdesk.io.model_store import find_model, list_models, load_estimator, user_models_dir

pytest.importorskip("demucs")
pytest.importorskip("omegaconf")

RATE = 44100
SEGMENT = 8192  # each tiny model's training length, in samples
SMALL = dict(channels=8, depth=3, nfft=2048, bottom_channels=16, t_layers=2, t_heads=2, dconv_mode=3)
SOURCES = ["drums", "bass", "other", "vocals"]
SIGNATURES = ["a1b2c3d4", "0badc0de", "5eed5eed", "f00dcafe"]
IDENTITY = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
# every stem's weights sum to something else than 1, so the division by the sum matters
MIXED = [[1.0, 0.5, 0.0, 2.0], [0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 0.0, 1.0]]
ONE_UNUSED = [[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 1.0, 0.0], [0.0, 2.0, 0.0, 1.0]]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def demucs_model(folder: Path, signature: str, seed: int, **overrides) -> Path:
    """A tiny HTDemucs (the demucs package's class), serialised by demucs.states and saved with its checksum in
    its name (``SIGNATURE-CHECKSUM.th``), as Demucs publishes htdemucs_ft's four files."""
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    settings = {"sources": SOURCES, "segment": Fraction(SEGMENT, RATE), **SMALL, **overrides}
    model = HTDemucs(**settings)
    with torch.no_grad():  # layer scales up, so that the random network is far from linear
        for name, parameter in model.named_parameters():
            if name.endswith(".scale"):
                parameter.fill_(0.5)
    save_with_checksum(serialize_model(model, OmegaConf.create({"epochs": 1})), folder / f"{signature}.th")
    return next(folder.glob(f"{signature}-*.th"))


def bag_yaml(folder: Path, weights: list[list[float]] | None, models=SIGNATURES, name="tiny_ft") -> Path:
    """The bag's YAML in Demucs's remote format (demucs/remote/htdemucs_ft.yaml)."""
    path = folder / f"{name}.yaml"
    lines = [f"models: {list(models)!r}"]
    if weights is not None:
        lines += ["weights: ["] + [f"  [{', '.join(f'{w!r}' for w in row)}]," for row in weights] + ["]"]
    path.write_text("\n".join(lines))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("bag")
    return [demucs_model(folder, sig, seed=20 + i) for i, sig in enumerate(SIGNATURES)]


def installed_ids() -> set[str]:
    return {card.id for card in list_models()}


def refused(*argv) -> str:
    before = installed_ids()
    code, out, err = run(*argv)
    assert code == 1 and out == "", err
    assert installed_ids() == before  # nothing installed
    assert not user_models_dir().exists() or not [p for p in user_models_dir().iterdir() if p.name.startswith(".")]
    return err


def reference_bag(files: list[Path], weights):
    """demucs's own BagOfModels of the files, loaded by demucs's own loader."""
    from demucs.apply import BagOfModels
    from demucs.states import load_model

    return BagOfModels([load_model(path).eval() for path in files], weights)


def chunked(estimator, audio: torch.Tensor) -> torch.Tensor:
    """The estimator's raw stems (before the null rule) over a whole excerpt, cut by the chunker as `Separator`
    cuts it for this estimator (its segments, overlap and window)."""
    plan = Separator(estimator).waveform_segments(RATE)
    with torch.inference_mode():
        return Chunker(lambda x: estimator(x[None])[0], **plan).run(audio)


# --- the bag against demucs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [MIXED, IDENTITY, ONE_UNUSED], ids=["mixed", "identity", "one-unused"])
def test_an_imported_bag_equals_demucs_apply_model_on_a_whole_excerpt(tmp_path, models, weights):
    from demucs.apply import apply_model

    config = bag_yaml(tmp_path, weights)
    code, out, err = run("models", "import", *models, config, "--name", "tiny-ft")
    assert code == 0, err
    card = find_model("tiny-ft")
    ours, _ = load_estimator("tiny-ft")
    assert isinstance(ours, Bag) and card.estimator == "bag" and card.sources == SOURCES
    assert card.raw["bag"]["models"] == SIGNATURES and card.raw["bag"]["weights"] == weights
    assert [f["name"] for f in card.raw["source"]["files"]] == [p.name for p in models]
    used = [sig for sig, row in zip(SIGNATURES, weights) if any(row)]
    assert card.raw["bag"]["run"] == used and len(ours.members) == len(used)
    assert f"{len(used)} networks run on each segment" in card.raw["description"]
    if weights is ONE_UNUSED:  # a model weighted 0 for every stem is left out, and the card says so
        assert "0badc0de" in card.raw["import_notes"][0] and "leaves it out" in card.raw["import_notes"][0]

    # the chunker treats the bag as one of its models: the same segment, overlap and window
    plan, single = Separator(ours).chunking(RATE, 1.0, 0.1), Separator(ours.members[0]).chunking(RATE, 1.0, 0.1)
    assert plan["segment"] == single["segment"] == SEGMENT and plan["overlap"] == single["overlap"] == SEGMENT // 4
    assert torch.equal(plan["window"](5000, plan["overlap"]), single["window"](5000, single["overlap"]))

    # Three segments: two whole, the last 4712 samples. Demucs centres its last, shorter segments in the song where
    # StemDesk zero-pads them at their end (docs/htdemucs.md), so the song is given to demucs zero-padded to a whole
    # last segment; before that last segment the two are compared on the song as it is.
    torch.manual_seed(5)
    length, last = 17000, 2 * (SEGMENT - SEGMENT // 4)
    audio = 0.3 * torch.randn(2, length)
    calls = [0] * len(ours.members)
    for index, member in enumerate(ours.members):
        member.register_forward_hook(lambda *_, i=index: calls.__setitem__(i, calls[i] + 1))
    got = chunked(ours, audio)
    assert calls == [3] * len(used)  # each model used runs once per segment, for all the stems it is weighted for
    bag = reference_bag(models, weights)
    with torch.no_grad():
        padded = torch.nn.functional.pad(audio, (0, last + SEGMENT - length))[None]
        expected = apply_model(bag, padded, shifts=0, split=True, overlap=0.25)[0, ..., :length]
        as_is = apply_model(bag, audio[None], shifts=0, split=True, overlap=0.25)[0]
    difference = (expected - got).abs().max().item()
    before_last = (as_is[..., :last] - got[..., :last]).abs().max().item()
    print(
        f"bag {weights}: max |StemDesk − demucs| = {difference:.2e} (song as it is, before the last segment: {before_last:.2e})"
    )
    tolerance = 1e-5 * expected.abs().max().item() + 1e-6
    assert difference < tolerance and before_last < tolerance
    alone = [chunked(member, audio) for member in ours.members]
    if weights is IDENTITY:  # each stem is its own model's, exactly
        assert all(torch.equal(got[s], alone[s][s]) for s in range(4))
    if weights is MIXED:  # a stem weighted in several models is their weighted mean, none of them alone
        for s in (0, 1, 3):
            assert min((one[s] - got[s]).abs().max().item() for one in alone) > 100 * tolerance


def test_a_bag_runs_only_the_models_it_weighs_and_says_what_it_needs():
    small = {"width": 8, "bottom_channels": 8, "transformer_layers": 1, "heads": 2, "nfft": 512, "segment": 4096}
    member = {"kind": "htdemucs", "config": small}
    bag = build_estimator("bag", {"sources": SOURCES, "members": [member] * 3, "weights": ONE_UNUSED[:3]})
    calls = [0, 0, 0]
    for index, network in enumerate(bag.members):
        network.register_forward_hook(lambda *_, i=index: calls.__setitem__(i, calls[i] + 1))
    with torch.inference_mode():
        out = bag(torch.randn(1, 2, 3000))
    assert out.shape == (1, 4, 2, 3000) and calls == [1, 0, 1]
    rebuilt = build_estimator("bag", bag.config())  # as a card rebuilds it
    assert rebuilt.config() == bag.config() and rebuilt.segment == 4096
    with pytest.raises(ValueError, match="sum to 0"):
        build_estimator("bag", {"sources": SOURCES, "members": [member] * 2, "weights": [[1, 1, 0, 1], [1, 1, 0, 1]]})
    with pytest.raises(ValueError, match="different segments"):
        build_estimator(
            "bag", {"sources": SOURCES, "members": [member, {**member, "config": {**small, "segment": 8192}}]}
        )
    with pytest.raises(ValueError, match="one row per model"):
        build_estimator("bag", {"sources": SOURCES, "members": [member] * 2, "weights": [[1, 1, 1, 1]]})


# --- through the command line: the stems null ----------------------------------------------------------------------


def test_a_separation_with_the_bag_nulls_bit_exactly(tmp_path, models, song_file):
    code, _, err = run("models", "import", *models, bag_yaml(tmp_path, MIXED), "--name", "tiny-ft")
    assert code == 0, err
    song = song_file(seconds=1.0)
    code, _, err = run("separate", song, "-o", tmp_path / "stems", "--model", "tiny-ft", "--bit-depth", "16")
    assert code == 0, err
    stems = sorted((tmp_path / "stems" / song.stem).glob("*.wav"))
    assert [p.stem for p in stems] == sorted(SOURCES)
    assert_stems_null(song, stems, "16")


# --- refused, saying what to do ------------------------------------------------------------------------------------


def test_bags_demucs_could_not_make_are_refused_saying_what_to_do(tmp_path, models):
    err = refused("models", "import", *models[:3], bag_yaml(tmp_path, IDENTITY))
    assert "no file given is f00dcafe" in err and "Give every model's file too" in err
    err = refused("models", "import", *models, bag_yaml(tmp_path, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]))
    assert "one row per model (4) with one weight per stem (4" in err and "Fix the YAML's weights" in err
    err = refused("models", "import", *models, bag_yaml(tmp_path, IDENTITY[:3]))
    assert "one row per model (4)" in err and "not 3 rows" in err
    err = refused("models", "import", *models)
    assert "only as a bag of models: give the bag's YAML too" in err
    err = refused("models", "import", *models, bag_yaml(tmp_path, [[1, 0, 0, 0]] * 4))
    assert "weights for bass sum to 0" in err

    other = tmp_path / "other"
    other.mkdir()
    reordered = demucs_model(other, "0badc0de", seed=1, sources=["bass", "drums", "other", "vocals"])
    err = refused("models", "import", models[0], reordered, *models[2:], bag_yaml(tmp_path, IDENTITY))
    assert "separate different stems" in err and "drums, bass, other, vocals" in err
    assert "bass, drums, other, vocals" in err and "the same stems in the same order" in err
    faster = demucs_model(other, "5eed5eed", seed=2, samplerate=48000)
    err = refused("models", "import", *models[:2], faster, models[3], bag_yaml(tmp_path, IDENTITY))
    assert "different sample rates" in err and "48000 Hz" in err
    longer = demucs_model(other, "f00dcafe", seed=3, segment=Fraction(2 * SEGMENT, RATE))
    err = refused("models", "import", *models[:3], longer, bag_yaml(tmp_path, IDENTITY))
    assert "different segments" in err and "segment: SECONDS" in err
    # the bag's segment, no longer than any model's, sets them all (as Demucs's BagOfModels does)
    config = bag_yaml(tmp_path, IDENTITY)
    config.write_text(config.read_text() + f"\nsegment: {SEGMENT / RATE!r}\n")
    code, _, err = run("models", "import", *models[:3], longer, config, "--name", "evened")
    assert code == 0, err
    assert load_estimator("evened")[0].segment == SEGMENT


# --- the catalog ---------------------------------------------------------------------------------------------------


def catalog_entry(server: Server, files: list[Path], config: str) -> dict:
    return {
        "id": "tiny-ft",
        "name": "Tiny htdemucs_ft",
        "summary": "Four tiny HTDemucs with random weights, one per stem.",
        "stems": SOURCES,
        "architecture": "htdemucs",
        "cannot_run": None,
        "publisher": {"name": "the tests", "page": "http://127.0.0.1/"},
        "config": {
            "file": "tiny_ft.yaml",
            "url": server.url("/tiny_ft.yaml"),
            "sha256": hashlib.sha256(config.encode()).hexdigest(),
            "content": config,
            "source": "a test",
        },
        "files": [
            {
                "file": path.name,
                "url": server.url(f"/{path.name}"),
                "size_bytes": None,
                "sha256": None,
                "sha256_prefix": path.stem.rsplit("-", 1)[1],
                "source": "a test",
            }
            for path in files
        ],
        "checksum": "Demucs's prefix in the name",
        "licence": "CC0 (the tests')",
        "licence_source": "http://127.0.0.1/licence",
        "caution": "Random weights: for tests only.",
        "training_data": "none: random weights",
        "quality": [],
        "speed": None,
    }


def test_the_catalog_installs_a_bag_from_its_four_files_and_it_separates(tmp_path, models, song_file, monkeypatch):
    server = Server()
    try:
        for path in models:
            server.files[f"/{path.name}"] = path.read_bytes()
        config = bag_yaml(tmp_path, IDENTITY).read_text()
        entry = catalog_entry(server, models, config)
        (tmp_path / "catalog.json").write_text(json.dumps({"schema": 1, "models": [entry]}))
        monkeypatch.setenv(catalog.CATALOG_ENV, str(tmp_path / "catalog.json"))
        code, out, err = run("models", "install", "tiny-ft", "--accept-license")
        assert code == 0, err
        assert sorted(path for path, *_ in server.requests) == sorted(f"/{p.name}" for p in models)
        assert "Installed tiny-ft (bag" in out and "Download: size not published from 4 files: " in err
        card = find_model("tiny-ft")
        assert card.raw["bag"]["models"] == SIGNATURES and card.raw["bag"]["weights"] == IDENTITY
        assert (
            "A bag of 4 HTDemucs" in card.raw["description"]
            and "each stem taken from its own model" in (card.raw["description"])
        )
        assert card.raw["licenses"]["weights"].startswith("CC0 (the tests')")
        assert card.raw["license_note"] == "Random weights: for tests only."
        files = card.raw["source"]["files"]
        assert [f["name"] for f in files] == [p.name for p in models]
        assert all(f["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest() for f, p in zip(files, models))
        assert not (catalog.downloads_dir() / "tiny-ft").exists()  # the downloads are not kept

        song = song_file(seconds=0.5)
        code, _, err = run("separate", song, "-o", tmp_path / "stems", "--model", "tiny-ft", "--bit-depth", "24")
        assert code == 0, err
        assert_stems_null(song, sorted((tmp_path / "stems" / song.stem).glob("*.wav")), "24")
        assert run("models", "remove", "tiny-ft")[0] == 0

        # by hand: a --file for each, in any order, one saved under another name (found by its checksum)
        renamed = tmp_path / "renamed.th"
        shutil.copy(models[2], renamed)
        given = [models[3], renamed, models[0], models[1]]
        before = len(server.requests)
        err = refused(
            "models", "install", "tiny-ft", "--accept-license", *[a for p in given[:3] for a in ("--file", p)]
        )
        assert "tiny-ft is 4 files" in err and "give each with its own --file, not 3" in err
        code, _, err = run(
            "models", "install", "tiny-ft", "--accept-license", *[a for p in given for a in ("--file", p)]
        )
        assert code == 0, err
        assert len(server.requests) == before  # nothing downloaded
        installed = find_model("tiny-ft").raw["source"]["files"]
        assert [f["name"] for f in installed] == [p.name for p in models]
        assert installed[2]["installed_from"] == str(renamed)
    finally:
        server.close()


def test_a_catalog_bag_whose_yaml_does_not_name_its_files_downloads_nothing(tmp_path, models, monkeypatch):
    server = Server()
    try:
        config = bag_yaml(tmp_path, IDENTITY, models=[*SIGNATURES[:3], "deadbeef"]).read_text()
        entry = catalog_entry(server, models, config)
        (tmp_path / "catalog.json").write_text(json.dumps({"schema": 1, "models": [entry]}))
        monkeypatch.setenv(catalog.CATALOG_ENV, str(tmp_path / "catalog.json"))
        err = refused("models", "install", "tiny-ft", "--accept-license")
        assert "names the models a1b2c3d4, 0badc0de, 5eed5eed, deadbeef" in err and "nothing was downloaded" in err
        assert server.requests == []
    finally:
        server.close()


def test_the_shipped_htdemucs_ft_entry_holds_demucs_yaml_and_runs():
    import demucs

    published = Path(demucs.__file__).parent / "remote" / "htdemucs_ft.yaml"
    entry = catalog.load_catalog(Path(catalog.__file__).parent / "catalog.json")["htdemucs-ft"]
    assert entry.runs and entry.config is not None
    assert entry.config.content == published.read_text(encoding="utf-8")
    assert [f.file for f in entry.files] == [
        "f7e0c4bc-ba3fe64a.th",
        "d12395a8-e57c48e6.th",
        "92cfc3b6-ef3bcb9c.th",
        "04573f0d-f3cf25b2.th",
    ]
    command = catalog.by_hand(entry, ModelError("The download failed."))
    assert command.endswith(" ".join(f"--file {f.file}" for f in entry.files))
