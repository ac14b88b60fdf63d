"""Split models on separated stems: the children are written beside their parent, add up to it bit for bit, the
whole tree adds up to the song, the certificate says so, and a split that cannot run is refused before anything is
written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import assert_stems_null, run, tiny_split_model

from stemdesk.export.nullcheck import null_residual
from stemdesk.io.stems import CERTIFICATE


@pytest.fixture
def split_model():
    """A small split model of vocals into lead and backing."""
    return tiny_split_model()


def ints(path) -> np.ndarray:
    return sf.read(str(path), dtype="int32", always_2d=True)[0].astype(np.int64)


@pytest.mark.parametrize("depth", ["16", "24"])
def test_children_add_up_to_their_stem_and_the_tree_to_the_song(song_file, tmp_path, split_model, depth):
    song = song_file(seconds=4.0, subtype="PCM_16")
    out = tmp_path / "out"
    code, text, err = run(
        "separate", song, "-o", out, "--model", "tiny-4stem", "--split", "vocals=tiny-split", "--bit-depth", depth
    )
    assert code == 0, err
    folder = out / "song"
    children = [folder / "vocals" / "lead.wav", folder / "vocals" / "backing.wav"]
    assert f"vocals split by {split_model} into lead, backing in {folder / 'vocals'}" in text and "bit-exact" in text
    # each level nulls as `stemdesk nullcheck` (a second reader) measures it
    assert_stems_null(folder / "vocals.wav", children, depth)
    leaves = [*children, folder / "drums.wav", folder / "bass.wav", folder / "other.wav"]
    assert_stems_null(song, leaves, depth)
    # and by hand, in integers: Σ children = the parent, Σ leaves = the song at the stems' depth
    assert np.array_equal(sum(ints(p) for p in children), ints(folder / "vocals.wav"))
    assert np.array_equal(sum(ints(p) for p in leaves), ints(song))  # int32 reads: 16-bit samples << 16, alike
    assert all(np.abs(ints(p)).max() > 0 for p in children)
    cert = json.loads((folder / CERTIFICATE).read_text())
    split = cert["splits"]["vocals"]
    assert split["model"]["id"] == split_model and split["children"] == ["lead.wav", "backing.wav"]
    assert split["null"]["bit_exact"] and cert["tree_null"]["bit_exact"]
    # the tree's null, composed from the two checks, is what reading the leaves back measures
    keys = ["vocals/lead", "vocals/backing", "drums", "bass", "other"]
    read = null_residual(song, leaves, names=keys).as_dict()
    tree = cert["tree_null"]
    assert list(tree["energy_share"]) == keys
    assert tree["energy_share"] == pytest.approx(read.pop("energy_share"), abs=2e-6)
    assert {k: v for k, v in tree.items() if k != "energy_share"} == read
    # the song's stems listed with the hashes of the files as they are
    assert {o["file"]: o["sha256"] for o in cert["outputs"]} == {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in ("vocals.wav", "drums.wav", "bass.wav", "other.wav")
    }
    assert cert["settings"]["splits"] == {"vocals": split_model}
    inner = json.loads((folder / "vocals" / CERTIFICATE).read_text())
    assert inner["source"]["file"] == "vocals.wav" and inner["null"]["bit_exact"]


def test_float_children_are_read_back_for_the_trees_null(song_file, tmp_path, split_model):
    """32-bit float stems null to within a rounding, not bit for bit: the tree's null is measured on the files."""
    song = song_file(seconds=3.0, subtype="PCM_16")
    out = tmp_path / "out"
    code, _, err = run(
        "separate", song, "-o", out, "--model", "tiny-4stem", "--split", "vocals=tiny-split", "--bit-depth", "32f"
    )
    assert code == 0, err
    folder = out / "song"
    cert = json.loads((folder / CERTIFICATE).read_text())
    tree = cert["tree_null"]
    assert tree["domain"] == "float" and tree["passed"] and not tree["bit_exact"]
    leaves = [folder / "vocals" / "lead.wav", folder / "vocals" / "backing.wav"]
    leaves += [folder / f"{name}.wav" for name in ("drums", "bass", "other")]
    keys = ["vocals/lead", "vocals/backing", "drums", "bass", "other"]
    assert tree == null_residual(song, leaves, names=keys).as_dict()


def test_a_split_that_cannot_run_is_refused_before_anything_is_written(song_file, tmp_path, split_model):
    song = song_file()
    out = tmp_path / "out"
    for split, words in [
        ("drums=tiny-split", "tiny-split splits vocals, not drums"),
        ("vocals=tiny-4stem", "tiny-4stem is not a split model"),
        ("vocals", "--split takes PARENT=MODEL"),
        ("vocals=no-such-model", "no-such-model"),
    ]:
        code, _, err = run("separate", song, "-o", out, "--model", "tiny-4stem", "--split", split)
        assert code != 0 and words in err, (split, err)
        assert not out.exists()
    code, _, err = run("separate", song, "-o", out, "--model", split_model)  # a split model is no song model
    assert code != 0 and "tiny-split splits vocals, not a whole song" in err and "--split vocals=tiny-split" in err
    assert not out.exists()
    code, _, err = run("separate", song, "-o", out, "--model", "stemdesk-2stem", "--split", "vocals=tiny-split")
    assert code == 0, err  # the two-stem model makes vocals too
    code, _, err = run(
        "separate", song, "-o", out, "--model", "stemdesk-2stem", "--split", "drums=tiny-split", "--overwrite"
    )
    assert code != 0 and "tiny-split splits vocals, not drums" in err


def test_children_of_an_earlier_separation_go_when_their_parent_is_made_again(song_file, tmp_path, split_model):
    song = song_file()
    out = tmp_path / "out"
    assert run("separate", song, "-o", out, "--model", "tiny-4stem", "--split", "vocals=tiny-split")[0] == 0
    mine = out / "song" / "drums"  # a folder of the user's own beside the stems: never touched
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert run("separate", song, "-o", out, "--model", "tiny-4stem", "--overwrite")[0] == 0
    assert not (out / "song" / "vocals").exists()  # its parent was separated again without a split
    assert (mine / "notes.txt").read_text() == "keep"
    cert = json.loads((out / "song" / CERTIFICATE).read_text())
    assert "splits" not in cert


def test_split_splits_a_stem_file_a_user_has(song_file, tmp_path, split_model):
    stem = song_file("Lead Vox.wav", subtype="PCM_24")
    code, text, err = run("split", stem, "--model", split_model)
    assert code == 0, err
    children = [tmp_path / "Lead Vox" / "lead.wav", tmp_path / "Lead Vox" / "backing.wav"]
    assert "Lead Vox split by tiny-split into lead, backing" in text and "bit-exact" in text
    assert_stems_null(stem, children, "24")
    code, _, err = run("split", stem, "--model", split_model)
    assert code != 0 and "--overwrite" in err  # the children already there are not replaced without a say
    code, _, err = run("split", stem, "--model", split_model, "-o", tmp_path / "flac", "--format", "flac")
    assert code == 0, err
    flac = [tmp_path / "flac" / "Lead Vox" / f"{name}.flac" for name in ("lead", "backing")]
    assert_stems_null(stem, flac, "24")
    code, _, err = run("split", stem, "--model", "tiny-4stem", "-o", tmp_path / "x")
    assert code != 0 and "tiny-4stem is not a split model" in err and not (tmp_path / "x").exists()


def test_the_api_and_a_batch_split_as_the_command_line_does(song_file, tmp_path, split_model):
    import stemdesk

    song = song_file()
    made = stemdesk.separate(song, "tiny-4stem", tmp_path / "api", split={"vocals": split_model}, bit_depth=16)
    assert list(made.splits["vocals"]) == ["lead", "backing"]
    assert made.split_nulls["vocals"].bit_exact
    assert np.array_equal(sum(ints(p) for p in made.splits["vocals"].values()), ints(made.stems["vocals"]))
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    sf.write(str(catalog / "one.wav"), sf.read(str(song))[0], 44100, subtype="PCM_16")
    out = tmp_path / "batch"
    code, _, err = run("batch", catalog, "-o", out, "--model", "tiny-4stem", "--split", f"vocals={split_model}")
    assert code == 0, err
    (record,) = [json.loads(line) for line in (out / "stemdesk-batch.jsonl").read_text().splitlines()]
    assert record["status"] == "done" and record["null"]["bit_exact"]
    assert {"one/vocals/lead.wav", "one/vocals/backing.wav"} <= {o["path"] for o in record["outputs"]}
    assert record["settings"]["splits"] == {"vocals": split_model}
    # a second run with the same settings skips the song; with another split it does it again
    code, text, _ = run("batch", catalog, "-o", out, "--model", "tiny-4stem", "--split", f"vocals={split_model}")
    assert code == 0 and "skipped 1" in text


def test_daw_sessions_nest_the_children_under_their_stem(song_file, tmp_path, split_model):
    import zipfile

    lxml = pytest.importorskip("lxml.etree")

    song = song_file()
    out = tmp_path / "out"
    code, _, err = run(
        "separate",
        song,
        "-o",
        out,
        "--model",
        "tiny-4stem",
        "--split",
        "vocals=tiny-split",
        "--session",
        "rpp,dawproject",
    )
    assert code == 0, err
    folder = out / "song"
    rpp = (folder / "song.rpp").read_text()
    tracks = [block.split("\n") for block in rpp.split("  <TRACK")[1:]]
    heads = [(lines[1].strip(), next((x.strip() for x in lines if "ISBUS" in x), "")) for lines in tracks]
    assert heads[:3] == [('NAME "vocals"', "ISBUS 1 1"), ('NAME "lead"', "ISBUS 0 0"), ('NAME "backing"', "ISBUS 2 -1")]
    assert [name for name, _ in heads[3:]] == ['NAME "drums"', 'NAME "bass"', 'NAME "other"']
    assert 'FILE "vocals/lead.wav"' in rpp and 'FILE "vocals.wav"' not in rpp  # the children carry the sound
    with zipfile.ZipFile(folder / "song.dawproject") as archive:
        assert archive.read("audio/vocals/lead.wav") == (folder / "vocals" / "lead.wav").read_bytes()
        assert "audio/vocals.wav" not in archive.namelist()
        project = lxml.fromstring(archive.read("project.xml"))
    schemas = Path(__file__).resolve().parents[3] / "shared" / "dawproject"
    if schemas.is_dir():
        xsd = lxml.XMLSchema(lxml.parse(str(schemas / "Project.xsd")))
        assert xsd.validate(project), xsd.error_log
    (group,) = [t for t in project.find("Structure").findall("Track") if t.get("name") == "vocals"]
    assert group.get("contentType") == "tracks" and group.find("Channel").get("role") == "submix"
    children = group.findall("Track")
    assert [t.get("name") for t in children] == ["lead", "backing"]
    assert all(t.find("Channel").get("destination") == group.find("Channel").get("id") for t in children)
    assert len(list(project.iter("Clip"))) == 5


def test_exported_stems_and_a_remix_carry_the_children(song_file, tmp_path, split_model):
    from stemdesk.io.stems import find_stems
    from stemdesk.mixer.mix import Mix
    from stemdesk.session import tasks

    song = song_file(seconds=3.0, subtype="PCM_16")
    out = tmp_path / "out"
    code, _, err = run("separate", song, "-o", out, "--model", "tiny-4stem", "--split", "vocals=tiny-split")
    assert code == 0, err
    folder = out / "song"
    made = tasks.export(folder, tmp_path / "export" / "song", tasks.ExportChoice(stems=True), Mix(), song).run()
    copy = made.stems
    assert copy == tmp_path / "export" / "song stems"
    for name in ("lead.wav", "backing.wav", CERTIFICATE):
        assert (copy / "vocals" / name).read_bytes() == (folder / "vocals" / name).read_bytes()
    assert find_stems(copy).leaves()[0] == ("vocals/lead", copy / "vocals" / "lead.wav")  # still a tree
    # the instrumental mutes the vocals group: exactly the song less both children
    instrumental = made.instrumental
    leaves = dict(find_stems(folder).leaves())
    assert np.array_equal(ints(instrumental), sum(ints(leaves[n]) for n in ("drums", "bass", "other")))
    # `stemdesk remix --preset karaoke-backing` keeps the backing vocals, and says it nulls with the lead
    code, text, err = run("remix", folder, "--preset", "karaoke-backing", "-o", tmp_path / "kb.wav", "--mixture", song)
    assert code == 0, err
    kept = sum(ints(leaves[n]) for n in ("vocals/backing", "drums", "bass", "other"))
    assert np.array_equal(ints(tmp_path / "kb.wav"), kept)
    cert = json.loads(Path(text.split("certificate ")[1].split()[0]).read_text())
    assert cert["null"]["applicable"] and cert["null"]["bit_exact"]  # the render and the muted lead null the song
    assert cert["null"]["against"] == ["song.wav", "render", "lead.wav"]


def test_checking_a_split_folder_again_checks_the_children_and_names_an_edited_one(song_file, tmp_path, split_model):
    from stemdesk.session import tasks

    song = song_file(seconds=3.0, subtype="PCM_16")
    code, _, err = run(
        "separate", song, "-o", tmp_path / "out", "--model", "tiny-4stem", "--split", "vocals=tiny-split"
    )
    assert code == 0, err
    folder = tmp_path / "out" / "song"
    check = tasks.recheck(folder, song).run()
    assert not check.measured and check.null.bit_exact  # the certificate stands: the tree's null
    assert set(check.null.energy_share) == {"vocals/lead", "vocals/backing", "drums", "bass", "other"}
    lead = folder / "vocals" / "lead.wav"
    samples, rate = sf.read(str(lead), dtype="int16")
    sf.write(str(lead), samples // 2, rate, subtype="PCM_16")
    check = tasks.recheck(folder, song).run()
    assert check.measured and check.changed == ["vocals/lead"] and not check.null.bit_exact
    assert set(check.null.energy_share) == {"vocals/lead", "vocals/backing", "drums", "bass", "other"}


def test_a_split_model_that_warns_of_itself_is_said_to_where_it_is_used(song_file, tmp_path):
    """A split model whose card says it does worse than an equal split on songs it never heard (the shipped
    lead/backing model) is named with that caution by `stemdesk models`, by `separate --split` and by the
    karaoke-backing remix that keeps its backing vocals; a model without one adds no line."""
    from helpers import tiny_split_model

    caution = ("worse than an equal split on unheard songs", "On songs it never heard it loses 2 dB to halving.")
    tiny_split_model("warned-split", caution=caution)
    tiny_split_model("plain-split")
    code, text, err = run("models", "--all")
    assert code == 0, err
    listed = text.split("warned-split")[1].split("plain-split")[0]
    assert f"caution: {caution[1]}" in listed
    song = song_file(seconds=3.0, subtype="PCM_16")
    for model in ("warned-split", "plain-split"):
        out = tmp_path / model
        code, text, err = run("separate", song, "-o", out, "--model", "tiny-4stem", "--split", f"vocals={model}")
        assert code == 0, err
        assert (f"caution: {caution[1]}" in text) == (model == "warned-split"), text
        code, text, err = run("remix", out / "song", "--preset", "karaoke-backing", "-o", tmp_path / f"{model}.wav")
        assert code == 0, err
        assert ("Caution: " + caution[1] in text) == (model == "warned-split"), text
