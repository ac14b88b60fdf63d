"""The remix mixer and everything exported from it: renders, the exact instrumental, certificates, DAW sessions."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import make_stems, run, song

from stemdesk.core.errors import MixError
from stemdesk.export import certificate
from stemdesk.export.remix import instrumental, render_remix
from stemdesk.export.session import write_dawproject, write_rpp
from stemdesk.io.formats import OutputFormat
from stemdesk.io.stems import find_stems, read_certificate
from stemdesk.mixer.effects import Effect
from stemdesk.mixer.mix import Mix, preset, with_preset
from stemdesk.mixer.render import Renderer

SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "dawproject"
NAMES = ["vocals", "drums", "bass", "other"]
RATE = 44100


def read(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float64", always_2d=True)[0].T


# --- the null-sum property and hand-computed remixes ---------------------------------------------------------


@pytest.mark.parametrize("depth", ["16", "24", "32f"])
def test_bypassed_effects_and_unity_gains_render_the_original_mix(tmp_path, depth):
    mixture, folder = make_stems(tmp_path, depth)
    stems = find_stems(folder)
    mix = Mix()
    for name in NAMES:
        mix.channel(name).effects = [Effect("reverb", bypass=True), Effect("compressor", bypass=True)]
    mix.master = [Effect("limiter", bypass=True)]
    result = render_remix(stems, mix, tmp_path / "render.wav", OutputFormat.parse("wav", "32f"), mixture)
    rendered, original = read(result.path), read(mixture)
    residual = np.abs(rendered - original).max()
    if depth == "32f":
        assert residual == 0 or 20 * np.log10(residual) <= -138
    else:
        assert residual == 0.0
    null = json.loads(result.certificate.read_text())["null"]
    assert null["applicable"] and null["passed"]


def test_vocals_down_6_db_equals_the_hand_computation(tmp_path):
    _, folder = make_stems(tmp_path, "24")
    stems = find_stems(folder)
    mix = Mix()
    mix.vocal_db = -6.0
    result = render_remix(stems, mix, tmp_path / "remix.wav", OutputFormat.parse("wav", "32f"))
    by_name = {p.stem: read(p) for p in stems.paths}
    expected = by_name["vocals"] * 10 ** (-6 / 20) + by_name["drums"] + by_name["bass"] + by_name["other"]
    assert np.abs(read(result.path) - expected).max() < 1e-6
    cert = json.loads(result.certificate.read_text())
    assert cert["null"]["applicable"] is False and cert["settings"]["mix"]["channels"]["vocals"]["gain_db"] == -6


def test_instrumental_is_exactly_mixture_minus_vocals(tmp_path):
    mixture, folder = make_stems(tmp_path, "16")
    stems = find_stems(folder)
    result = instrumental(stems, tmp_path / "instrumental", mixture)
    assert result.path.suffix == ".wav" and sf.info(str(result.path)).subtype == "PCM_16"
    code, out, _ = run("nullcheck", mixture, result.path, folder / "vocals.wav")
    assert code == 0 and json.loads(out)["bit_exact"]
    assert json.loads(result.certificate.read_text())["null"]["bit_exact"]


def test_pan_law_is_unity_at_centre_and_fades_the_far_side():
    audio = np.ones((1, 2, 64))
    for pan, left, right in ((0.0, 1.0, 1.0), (1.0, 0.0, 1.0), (-1.0, 1.0, 0.0), (0.5, np.cos(np.pi / 4), 1.0)):
        mix = Mix()
        mix.channel("vocals").pan = pan
        out = Renderer(mix, ["vocals"], RATE, 2).process(audio)
        assert np.allclose(out[:, -1], [left, right], atol=1e-6)


def test_effects_keep_their_state_across_blocks():
    """Rendering in small blocks gives the same audio as one big block (reverb tail, compressor envelope)."""
    stems = np.stack([song(2.0, RATE, 2, seed).T for seed in range(2)])
    mix = Mix.from_dict(
        {
            "channels": {
                "a": {"effects": [{"kind": "compressor", "params": {"threshold_db": -30}}, {"kind": "reverb"}]},
                "b": {"gain_db": -3, "effects": [{"kind": "delay"}]},
            },
            "master": [{"kind": "limiter"}],
        }
    )
    whole = Renderer(mix, ["a", "b"], RATE, 2).process(stems)
    renderer = Renderer(mix, ["a", "b"], RATE, 2)
    blocks = np.concatenate([renderer.process(stems[..., i : i + 3000]) for i in range(0, stems.shape[-1], 3000)], -1)
    assert np.abs(whole - blocks).max() < 1e-5
    assert np.abs(whole - stems.sum(0)).max() > 0.01  # the effects did something


def test_a_moving_fader_ramps_instead_of_jumping():
    renderer = Renderer(Mix(), ["vocals"], RATE, 2)
    ones = np.ones((1, 2, 1000))
    renderer.process(ones)
    mix = Mix()
    mix.vocal_db = -20.0
    renderer.set_mix(mix)
    out = renderer.process(ones)[0]
    assert np.all(np.diff(out) <= 0) and out[0] > 0.99 and abs(out[-1] - 0.1) < 1e-6
    assert np.abs(np.diff(out)).max() < 0.01


@pytest.mark.parametrize("change", ["unmute", "unsolo", "unmute beside a fader"])
def test_a_stem_coming_back_fades_in_instead_of_jumping(change):
    """Issue 63: a stem unmuted (or all stems back after a solo) at its fader's 0 dB was summed at once, a jump of
    its whole level in one sample (a click the soak heard at the device); it ramps in like any gain change."""
    before, after = Mix(), Mix()
    if change == "unsolo":
        before.channel("a").solo = True
    else:
        before.channel("b").mute = True
    if change == "unmute beside a fader":
        before.channel("a").gain_db = after.channel("a").gain_db = -3.0
    renderer = Renderer(before, ["a", "b"], RATE, 2)
    stems = np.stack([np.zeros((2, 2000)), np.ones((2, 2000))])  # b: a constant, so any step is the gain's own
    first = renderer.process(stems[..., :1000])
    renderer.set_mix(after)
    second = renderer.process(stems[..., 1000:])
    out = np.concatenate([first, second], -1)[0]
    assert out[999] == 0.0 and out[-1] == 1.0  # silent before, whole after
    assert np.abs(np.diff(out)).max() < 0.01  # over RAMP samples, never in one


def test_mute_solo_and_presets():
    audio = np.stack([np.full((2, 16), float(i + 1)) for i in range(4)])
    assert Renderer(preset("karaoke", NAMES), NAMES, RATE, 2).process(audio)[0, 0] == 2 + 3 + 4
    assert Renderer(preset("acappella", NAMES), NAMES, RATE, 2).process(audio)[0, 0] == 1
    assert Renderer(preset("drumless", NAMES), NAMES, RATE, 2).process(audio)[0, 0] == 1 + 3 + 4
    up = Renderer(preset("vocal-up", NAMES, 6.0), NAMES, RATE, 2).process(audio)[0, 0]
    assert abs(up - (10 ** (6 / 20) + 9)) < 1e-5
    solo = Mix()
    solo.channel("bass").solo = True
    assert Renderer(solo, NAMES, RATE, 2).process(audio)[0, 0] == 3
    with pytest.raises(MixError, match="needs a vocals stem"):
        preset("karaoke", ["drums", "bass"])


def test_send_bus_adds_the_return_to_the_dry_signal():
    mix = Mix.from_dict(
        {
            "channels": {"vocals": {"sends": {"verb": -6.0}}},
            "buses": {"verb": [{"kind": "gain", "params": {"gain_db": 0.0}}]},
        }
    )
    out = Renderer(mix, ["vocals"], RATE, 2).process(np.ones((1, 2, 32)))
    assert abs(out[0, -1] - (1 + 10 ** (-6 / 20))) < 1e-6


# --- mixes as untrusted files ----------------------------------------------------------------------------------


def test_mix_json_round_trips_with_automation():
    mix = preset("vocal-down", NAMES, 4.0)
    mix.channel("drums").effects = [Effect.from_dict({"kind": "reverb", "params": {"wet_db": -18}})]
    mix.record("vocals/gain_db", 1.0, -10.0)
    mix.record("vocals/gain_db", 3.0, 0.0)
    mix.record("drums/fx/0/wet_db", 2.0, -6.0)
    again = Mix.from_json(mix.to_json())
    assert again.to_dict() == mix.to_dict()
    assert again.at(2.0).vocal_db == pytest.approx(-5.0)
    assert again.at(0.0).vocal_db == -10.0 and again.at(9.0).vocal_db == 0.0
    assert again.at(2.5).channels["drums"].effects[0].params["wet_db"] == -6.0


@pytest.mark.parametrize(
    "data, message",
    [
        ({"channels": {"vocals": {"gain_db": 1e9}}}, "vocals.gain_db must be a number"),
        ({"channels": {"vocals": {"pan": float("nan")}}}, "vocals.pan"),
        ({"channels": {"vocals": {"effects": [{"kind": "reverb", "params": {"room_size": 50}}]}}}, "out of range"),
        ({"channels": {"vocals": {"effects": [{"kind": "fuzz"}]}}}, "Unknown effect"),
        ({"channels": {"vocals": {"volume": 3}}}, "unknown field"),
        ({"stemdesk_mix": 99}, "newer StemDesk"),
        ({"channels": {"vocals": {"effects": [{"kind": "gain"}] * 100}}}, "at most 32"),
        ({"automation": {"vocals/gain_db": [[2, 0], [1, 0]]}}, "not in time order"),
        ({"automation": {"vocals/fx/3/wet_db": [[0, 0]]}}, "names effect 3"),
        ({"channels": {"vocals": {"sends": {"nowhere": 0}}}}, None),
    ],
)
def test_absurd_mixes_are_refused_with_the_field_named(data, message):
    if message is None:
        with pytest.raises(MixError, match="does not define"):
            Mix.from_dict(data).validate(NAMES)
    else:
        with pytest.raises(MixError, match=message):
            Mix.from_dict(data)


def test_mix_files_that_are_not_json_or_too_big():
    with pytest.raises(MixError, match="not valid JSON"):
        Mix.from_json("{not json")
    with pytest.raises(MixError, match="at most"):
        Mix.from_json(" " * (2 << 20))


def test_automation_changes_the_offline_render_over_time(tmp_path):
    _, folder = make_stems(tmp_path, "32f", seconds=4.0)
    stems = find_stems(folder)
    mix = Mix()
    for name in NAMES:
        mix.record(f"{name}/gain_db", 0.0, 0.0)
        mix.record(f"{name}/gain_db", 1.9, 0.0)
        mix.record(f"{name}/gain_db", 2.0, -60.0)
    out = read(render_remix(stems, mix, tmp_path / "auto.wav").path)
    mixture = read(tmp_path / "mixture.wav")
    first, last = slice(0, RATE), slice(3 * RATE, 4 * RATE)
    assert np.abs(out[:, first] - mixture[:, first]).max() < 1e-6
    assert np.sqrt(np.mean(out[:, last] ** 2)) < 2e-3 * np.sqrt(np.mean(mixture[:, last] ** 2))


# --- certificates and the null report --------------------------------------------------------------------------


def test_certificate_is_embedded_in_each_wav_and_lists_output_hashes(tmp_path):
    mixture, folder = make_stems(tmp_path, "24")
    cert = read_certificate(folder)
    assert cert["source"]["sha256"] == certificate.sha256_file(mixture)
    for item in cert["outputs"]:
        path = folder / item["file"]
        assert item["sha256"] == certificate.sha256_file(path)
        assert certificate.read_embedded(path)["source"]["file"] == "mixture.wav"
        info = sf.info(str(path))
        assert info.frames == 4 * RATE  # the appended chunk does not disturb readers


def test_separate_writes_a_certificate_with_the_null_result(tmp_path, song_file):
    path = song_file(seconds=3.0)
    code, out, _ = run("separate", path, "-o", tmp_path / "out", "--model", "tiny-4stem", "--bit-depth", "16")
    assert code == 0 and "null-sum check: bit-exact" in out
    folder = tmp_path / "out" / "song"
    cert = read_certificate(folder)
    assert cert["null"]["bit_exact"] and cert["model"]["id"] == "tiny-4stem"
    assert cert["null"]["frames"] == 3 * RATE and set(cert["null"]["energy_share"]) == set(NAMES)
    assert abs(sum(cert["null"]["energy_share"].values()) - 1) < 1e-4
    assert certificate.read_embedded(folder / "vocals.wav")["null"]["bit_exact"]


def test_nullcheck_points_at_the_worst_regions(tmp_path):
    mixture, folder = make_stems(tmp_path, "32f")
    vocals = folder / "vocals.wav"
    audio = read(vocals)
    audio[:, int(2.5 * RATE)] += 0.01
    sf.write(str(vocals), audio.T, RATE, subtype="FLOAT")
    code, out, _ = run("nullcheck", mixture, folder, "--regions", "1")
    result = json.loads(out)
    assert code == 3 and not result["passed"]
    assert result["worst_regions"][0]["start_seconds"] == 2.0 and result["worst_regions"][0]["peak_dbfs"] > -41


# --- DAW sessions ------------------------------------------------------------------------------------------------


def session_mix() -> Mix:
    mix = preset("vocal-down", NAMES, 6.0)
    mix.channel("drums").pan = -0.5
    mix.channel("bass").mute = True
    mix.channel("other").effects = [
        Effect.from_dict({"kind": "compressor", "params": {"ratio": 3}}),
        Effect.from_dict({"kind": "peak", "params": {"gain_db": 2}}),
        Effect.from_dict({"kind": "reverb"}),
    ]
    mix.buses = {"verb": [Effect.from_dict({"kind": "reverb"})]}
    mix.channel("vocals").sends = {"verb": -12.0}
    mix.master = [Effect.from_dict({"kind": "limiter"})]
    mix.record("vocals/gain_db", 1.0, -6.0)
    mix.record("vocals/gain_db", 2.0, -12.0)
    return mix


def test_dawproject_validates_and_holds_the_stems_and_mix(tmp_path):
    lxml = pytest.importorskip("lxml.etree")
    _, folder = make_stems(tmp_path, "24")
    stems = find_stems(folder)
    written = write_dawproject(stems, session_mix(), tmp_path / "session", tempo=128)
    path = written.path
    assert path.name == "session.dawproject" and written.note == ""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert {"project.xml", "metadata.xml", *[f"audio/{n}.wav" for n in NAMES]} <= set(names)
        for name in NAMES:
            assert archive.read(f"audio/{name}.wav") == (folder / f"{name}.wav").read_bytes()
        project = lxml.fromstring(archive.read("project.xml"))
        metadata = lxml.fromstring(archive.read("metadata.xml"))
    if SCHEMAS.is_dir():
        for document, schema in ((project, "Project.xsd"), (metadata, "MetaData.xsd")):
            xsd = lxml.XMLSchema(lxml.parse(str(SCHEMAS / schema)))
            assert xsd.validate(document), xsd.error_log
    tracks = {t.get("name"): t for t in project.iter("Track")}
    # the fader stands where the recorded automation left it (-12 dB)
    assert float(tracks["vocals"].find("Channel/Volume").get("value")) == pytest.approx(10 ** (-12 / 20), 1e-5)
    assert float(tracks["drums"].find("Channel/Pan").get("value")) == pytest.approx(0.25)
    assert tracks["bass"].find("Channel/Mute").get("value") == "true"
    assert tracks["other"].find("Channel/Devices/Compressor/Ratio").get("value") == "3.000000"
    clips = list(project.iter("Clip"))
    assert len(clips) == 4 and all(float(c.get("time")) == 0 and float(c.get("duration")) == 4.0 for c in clips)
    points = [p for p in project.iter("Points")]
    volume_id = tracks["vocals"].find("Channel/Volume").get("id")
    assert points[0].find("Target").get("parameter") == volume_id and len(points[0].findall("RealPoint")) == 2
    assert float(project.find("Transport/Tempo").get("value")) == 128


def test_dawproject_warps_clips_to_the_mix_tempo_and_says_it_leaves_the_key_out(tmp_path):
    lxml = pytest.importorskip("lxml.etree")
    _, folder = make_stems(tmp_path, "24")
    mix = session_mix()
    mix.tempo, mix.semitones = 0.8, 2.0
    written = write_dawproject(find_stems(folder), mix, tmp_path / "slow", tempo=128)
    assert "+2 semitones" in written.note and "REAPER" in written.note
    with zipfile.ZipFile(written.path) as archive:
        project = lxml.fromstring(archive.read("project.xml"))
    if SCHEMAS.is_dir():
        xsd = lxml.XMLSchema(lxml.parse(str(SCHEMAS / "Project.xsd")))
        assert xsd.validate(project), xsd.error_log
    clips = list(project.iter("Clip"))
    assert len(clips) == 4
    for clip in clips:  # 4 s of stem played over 5 s of the arrangement
        assert float(clip.get("duration")) == pytest.approx(5.0)
        warps = clip.find("Warps")
        assert float(warps.find("Audio").get("duration")) == 4.0
        assert [(float(w.get("time")), float(w.get("contentTime"))) for w in warps.findall("Warp")] == [
            (0.0, 0.0),
            (pytest.approx(5.0), 4.0),
        ]
    times = [float(p.get("time")) for p in next(project.iter("Points")).findall("RealPoint")]
    assert times == [pytest.approx(1.25), pytest.approx(2.5)]  # the moves at 1 s and 2 s of the song


def parse_rpp(text: str) -> dict:
    """A small parser for REAPER's chunk format: nested <TAG ...> blocks of lines."""
    root: dict = {"tag": "ROOT", "lines": [], "children": []}
    stack = [root]
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("<"):
            node = {"tag": line[1:].split()[0], "head": line[1:], "lines": [], "children": []}
            stack[-1]["children"].append(node)
            stack.append(node)
        elif line == ">":
            stack.pop()
        elif line:
            stack[-1]["lines"].append(line)
    assert len(stack) == 1, "unbalanced chunks"
    return root["children"][0]


def test_rpp_parses_and_lists_files_gains_and_lengths(tmp_path):
    _, folder = make_stems(tmp_path, "24")
    stems = find_stems(folder)
    path = write_rpp(stems, session_mix(), tmp_path / "sessions" / "song").path
    project = parse_rpp(path.read_text())
    tracks = [c for c in project["children"] if c["tag"] == "TRACK"]
    assert [re.search(r'NAME "(.*)"', "\n".join(t["lines"])).group(1) for t in tracks] == NAMES
    for track, name in zip(tracks, NAMES):
        fields = {line.split()[0]: line.split()[1:] for line in track["lines"]}
        item = next(c for c in track["children"] if c["tag"] == "ITEM")
        source = item["children"][0]
        file = source["lines"][0].split(" ", 1)[1].strip('"')
        assert (path.parent / file).resolve() == (folder / f"{name}.wav").resolve()
        item_fields = {line.split()[0]: line.split()[1:] for line in item["lines"]}
        assert float(item_fields["LENGTH"][0]) == 4.0 and float(item_fields["POSITION"][0]) == 0
        gain = {"vocals": 10 ** (-12 / 20)}.get(name, 1.0)
        assert float(fields["VOLPAN"][0]) == pytest.approx(gain, 1e-5)
        assert fields["MUTESOLO"][0] == ("1" if name == "bass" else "0")
    envelope = next(c for c in tracks[0]["children"] if c["tag"] == "VOLENV2")
    assert [line.split()[1] for line in envelope["lines"] if line.startswith("PT")] == ["1.000000", "2.000000"]


def test_rpp_plays_items_at_the_mix_key_and_tempo(tmp_path):
    _, folder = make_stems(tmp_path, "24")
    mix = session_mix()
    mix.tempo, mix.semitones = 1.25, -3.0
    project = parse_rpp(write_rpp(find_stems(folder), mix, tmp_path / "fast", tempo=100).path.read_text())
    fields = {line.split()[0]: line.split()[1:] for line in project["lines"]}
    assert float(fields["TEMPO"][0]) == 125
    for track in (c for c in project["children"] if c["tag"] == "TRACK"):
        item = next(c for c in track["children"] if c["tag"] == "ITEM")
        item_fields = {line.split()[0]: line.split()[1:] for line in item["lines"]}
        assert float(item_fields["LENGTH"][0]) == pytest.approx(3.2)
        rate, keep_pitch, semitones = (float(v) for v in item_fields["PLAYRATE"][:3])
        assert (rate, keep_pitch, semitones) == (1.25, 1, -3)
    envelope = next(c for c in project["children"][0]["children"] if c["tag"] == "VOLENV2")
    assert [float(line.split()[1]) for line in envelope["lines"] if line.startswith("PT")] == [0.8, 1.6]


def test_cli_remix_export_and_separate_sessions(tmp_path, song_file):
    mixture, folder = make_stems(tmp_path, "16")
    code, out, err = run("remix", folder, "--preset", "karaoke", "-o", tmp_path / "karaoke.wav", "--mixture", mixture)
    assert code == 0, err
    assert json.loads((tmp_path / "karaoke.wav.certificate.json").read_text())["null"]["bit_exact"]
    (tmp_path / "mix.json").write_text(session_mix().to_json())
    code, out, err = run(
        "export",
        folder,
        "--session",
        "dawproject,rpp",
        "--mix",
        tmp_path / "mix.json",
        "-o",
        tmp_path / "daw" / "song",
        "--instrumental",
    )
    assert code == 0, err
    assert (tmp_path / "daw" / "song.dawproject").is_file() and (tmp_path / "daw" / "song.rpp").is_file()
    assert (tmp_path / "daw" / "song instrumental.wav").is_file()  # beside the output, as the app's
    assert not (folder / "instrumental.wav").exists()
    project = tmp_path / "karaoke.stemdesk"  # --mix takes a project's mix
    project.write_text(json.dumps({"stemdesk_project": 1, "mix": preset("karaoke", NAMES).to_dict()}))
    code, _, err = run("remix", folder, "--mix", project, "-o", tmp_path / "from project.wav")
    assert code == 0, err
    rendered = sf.read(str(tmp_path / "from project.wav"))[0]
    karaoke = sf.read(str(tmp_path / "karaoke.wav"))[0]
    assert np.array_equal(rendered, karaoke) and not np.array_equal(rendered, sf.read(str(mixture))[0])
    (tmp_path / "other.json").write_text(json.dumps({"tracks": [1, 2]}))  # not a mix: said, not ignored
    code, _, err = run("remix", folder, "--mix", tmp_path / "other.json", "-o", tmp_path / "y.wav")
    assert code == 1 and "not a StemDesk mix" in err and "'tracks'" in err and not (tmp_path / "y.wav").exists()
    code, _, err = run("remix", folder, "--preset", "karaoke", "-o", tmp_path / "karaoke.flac")
    assert code == 0, err  # a second format keeps both
    assert {p.name for p in tmp_path.glob("karaoke.*.certificate.json")} == {
        "karaoke.wav.certificate.json",
        "karaoke.flac.certificate.json",
    }
    song = song_file(seconds=2.0)
    code, out, err = run("separate", song, "-o", tmp_path / "sep", "--model", "tiny-4stem", "--session", "rpp")
    assert code == 0, err
    assert (tmp_path / "sep" / "song" / "song.rpp").is_file()
    code, _, err = run("remix", folder, "--vocals", "99", "-o", tmp_path / "x.wav")
    assert code == 1 and "vocal level must be a number between -120 and 24 dB" in err
    with pytest.raises(SystemExit) as usage:
        run("export", folder, "--session", "logic", "-o", tmp_path / "x")
    assert usage.value.code == 2


# --- key and tempo ---------------------------------------------------------------------------------------------


def test_key_and_tempo_are_part_of_the_mix_and_its_file():
    mix = preset("karaoke", NAMES)
    assert not mix.changes_key_or_tempo and "semitones" not in mix.to_dict() and mix.to_dict()["stemdesk_mix"] == 1
    mix.set_control("master/semitones", -2)
    mix.set_control("master/tempo", 0.8)
    data = mix.to_dict()
    assert (data["semitones"], data["tempo"], data["stemdesk_mix"]) == (-2.0, 0.8, 2)  # older versions say: update
    again = Mix.from_json(mix.to_json())
    assert (again.semitones, again.tempo) == (-2.0, 0.8) and again.channels["vocals"].mute
    assert mix.describe_key_tempo() == "-2 semitones, 80 % tempo"
    assert mix.control_range("master/tempo") == (0.5, 2.0)
    kept = with_preset(mix, "drumless", NAMES)  # a preset sets levels and keeps the key and tempo
    assert (kept.semitones, kept.tempo) == (-2.0, 0.8)
    mix.record("master/semitones", 1.0, 3.0)  # a MIDI move while recording sets the key, never automates it
    assert mix.semitones == 3.0 and not mix.automation
    with pytest.raises(MixError, match="The key must be a number between -12 and 12 semitones"):
        mix.set_control("master/semitones", 13)
    with pytest.raises(MixError, match="tempo must be a number between 0.5 and 2"):
        Mix.from_dict({"tempo": 3})
    with pytest.raises(MixError, match="hold for the whole song"):
        Mix.from_dict({"automation": {"master/tempo": [[0, 1.0]]}})


def test_a_remix_in_another_key_and_tempo_is_pitched_stretched_and_says_it_cannot_null(tmp_path):
    """The render of a 440 Hz sine through the mix at +3 semitones and 80 % tempo: 523.25 Hz, 1 / 0.8 as long (to a
    millisecond), at the same level, and its certificate says what was done instead of claiming a null."""
    folder = tmp_path / "stems"
    folder.mkdir()
    t = np.arange(3 * RATE) / RATE
    tone = 0.4 * np.sin(2 * np.pi * 440 * t)
    for name, share in zip(NAMES, (0.1, 0.2, 0.3, 0.4)):
        sf.write(str(folder / f"{name}.wav"), np.stack([tone * share] * 2, axis=1), RATE, subtype="FLOAT")
    sf.write(str(tmp_path / "mixture.wav"), np.stack([tone] * 2, axis=1), RATE, subtype="FLOAT")
    mix = Mix(semitones=3.0, tempo=0.8)
    result = render_remix(find_stems(folder), mix, tmp_path / "practice.wav", mixture=tmp_path / "mixture.wav")
    out = read(result.path)
    assert abs(out.shape[-1] - 3 * RATE / 0.8) <= RATE // 1000 and result.frames == out.shape[-1]
    middle = out[0, out.shape[-1] // 4 : 3 * out.shape[-1] // 4]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    hz = (k + 0.5 * (a - c) / (a - 2 * b + c)) * RATE / len(middle)
    assert abs(1200 * np.log2(hz / (440 * 2 ** (3 / 12)))) < 0.2
    assert abs(np.sqrt(2 * np.mean(middle**2)) - 0.4) < 0.01
    cert = json.loads(result.certificate.read_text())
    assert cert["null"]["applicable"] is False and "+3 semitones, 80 % tempo" in cert["null"]["reason"]
    assert cert["settings"]["key_tempo"]["semitones"] == 3.0 and cert["settings"]["key_tempo"]["tempo"] == 0.8
    assert cert["settings"]["key_tempo"]["seconds"] == pytest.approx(3 / 0.8, abs=1e-3)
    code, out_text, err = run(
        "remix", folder, "--preset", "karaoke", "--semitones", "-2", "--tempo", "1.25", "-o", tmp_path / "k.wav"
    )
    assert code == 0, err
    assert "-2 semitones, 125 % tempo" in out_text and "cannot null" in out_text
    assert abs(sf.info(str(tmp_path / "k.wav")).frames - 3 * RATE / 1.25) <= 1
    code, _, err = run("remix", folder, "--tempo", "3", "-o", tmp_path / "x.wav")
    assert code == 1 and "tempo must be a number between 0.5 and 2" in err and "--tempo" in err
