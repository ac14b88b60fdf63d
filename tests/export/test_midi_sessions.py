"""The stems' MIDI in DAW sessions: the notes `stemdesk midi` wrote beside the stems come back, note for note and at
their second of the song, as MIDI tracks of REAPER projects (in-project MIDI, read back from the project's events)
and DAWproject archives (notes clips, checked against the schema); at the mix's tempo and key where the session
plays the stems so. AAF says it holds audio only. (Ardour opens its MIDI tracks in tests/export/test_ardour.py.)"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from helpers import make_stems, rpp_midi

from stemdesk.export.aaf import write_aaf
from stemdesk.export.session import RPP_PPQ, write_dawproject, write_rpp
from stemdesk.io.stems import find_stems
from stemdesk.mixer.mix import Mix
from stemdesk.transcribe.pitched import Note
from stemdesk.transcribe.smf import DRUM_CHANNEL, Part, Timing, write_smf

SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "dawproject"
MELODY = [Note(0.5, 1.0, 69, 100), Note(1.0, 1.75, 72, 90), Note(2.25, 3.5, 76, 80)]
BASS = [Note(0.0, 1.0, 45, 110), Note(1.0, 2.0, 41, 100), Note(2.0, 3.9, 43, 95)]
KIT = [Note(t, t + 0.05, 36 if i % 2 == 0 else 38, 100) for i, t in enumerate((0.0, 0.5, 1.0, 1.5, 2.0, 3.0))]


def with_midi(folder: Path) -> Path:
    """Stems (4 s) with the MIDI `stemdesk midi` would write beside three of them, at a tempo of its own (93 BPM):
    a session places notes by their seconds, whatever tempo it runs at."""
    folder.mkdir(parents=True, exist_ok=True)
    _, stems = make_stems(folder)
    timing = Timing(93.0, "A minor")
    write_smf(stems / "vocals.mid", [Part("vocals", MELODY, 53)], timing)
    write_smf(stems / "bass.mid", [Part("bass", BASS, 33)], timing)
    write_smf(stems / "drums.mid", [Part("drums", KIT, channel=DRUM_CHANNEL)], timing)
    return stems


def expected(notes, channel=0, tempo=1.0, shift=0):
    return [(n.start / tempo, n.end / tempo, n.pitch + shift, channel) for n in notes]


def same(found, wanted, tolerance):
    assert len(found) == len(wanted)
    for (s, e, p, c), (ws, we, wp, wc) in zip(sorted(found), sorted(wanted)):
        assert (p, c) == (wp, wc)
        assert s == pytest.approx(ws, abs=tolerance) and e == pytest.approx(we, abs=tolerance)


def test_a_reaper_project_holds_each_stems_notes_as_a_midi_track_at_their_seconds(tmp_path):
    stems = find_stems(with_midi(tmp_path))
    written = write_rpp(stems, Mix(), tmp_path / "song", tempo=128)
    assert written.note == ""
    text = written.path.read_text()
    tracks = rpp_midi(text)
    assert list(tracks) == ["vocals MIDI", "drums MIDI", "bass MIDI"]  # the stems' order; other has no MIDI
    tick = 60 / 128 / RPP_PPQ
    same(tracks["vocals MIDI"], expected(MELODY), tick)
    same(tracks["bass MIDI"], expected(BASS), tick)
    same(tracks["drums MIDI"], expected(KIT, DRUM_CHANNEL), tick)
    # the stems' audio tracks come first and are unchanged: four items of audio
    assert text.count("<SOURCE WAVE") == 4 and text.count("<SOURCE MIDI") == 3


def test_a_reaper_project_plays_the_notes_at_the_mix_tempo_and_key(tmp_path):
    stems = find_stems(with_midi(tmp_path))
    mix = Mix()
    mix.tempo, mix.semitones = 1.25, 2.0
    written = write_rpp(stems, mix, tmp_path / "fast", tempo=100)
    tracks = rpp_midi(written.path.read_text())
    tick = 60 / 125 / RPP_PPQ
    same(tracks["vocals MIDI"], expected(MELODY, tempo=1.25, shift=2), tick)
    same(tracks["drums MIDI"], expected(KIT, DRUM_CHANNEL, tempo=1.25), tick)  # a drum note names a drum
    mix.semitones = 1.5
    written = write_rpp(stems, mix, tmp_path / "detuned", tempo=100)
    assert "moved +2 semitones, not +1.5" in written.note


def test_a_dawproject_holds_the_notes_as_clips_the_schema_accepts(tmp_path):
    lxml = pytest.importorskip("lxml.etree")
    stems = find_stems(with_midi(tmp_path))
    mix = Mix()
    mix.tempo = 0.8
    written = write_dawproject(stems, mix, tmp_path / "song", tempo=128)
    with zipfile.ZipFile(written.path) as archive:
        project = lxml.fromstring(archive.read("project.xml"))
    if SCHEMAS.is_dir():
        xsd = lxml.XMLSchema(lxml.parse(str(SCHEMAS / "Project.xsd")))
        assert xsd.validate(project), xsd.error_log
    tracks = {t.get("name"): t for t in project.iter("Track")}
    assert [n for n, t in tracks.items() if t.get("contentType") == "notes"] == [
        "vocals MIDI",
        "drums MIDI",
        "bass MIDI",
    ]
    lanes = {lane.get("track"): lane for lane in project.iter("Lanes") if lane.get("track")}
    for name, notes, channel in (("vocals MIDI", MELODY, 0), ("bass MIDI", BASS, 0), ("drums MIDI", KIT, 9)):
        clip = lanes[tracks[name].get("id")].find("Clips/Clip")
        assert float(clip.get("duration")) == pytest.approx(4.0 / 0.8)  # the stems' length at the mix tempo
        found = [
            (
                float(n.get("time")),
                float(n.get("time")) + float(n.get("duration")),
                int(n.get("key")),
                int(n.get("channel")),
            )
            for n in clip.find("Notes").findall("Note")
        ]
        same(found, expected(notes, channel, tempo=0.8), 1e-3)  # the SMF's own tick (93 BPM, 480 a beat)


def test_stems_without_midi_give_sessions_without_midi_tracks_and_aaf_names_the_files(tmp_path):
    (tmp_path / "plain").mkdir()
    _, plain = make_stems(tmp_path / "plain")
    text = write_rpp(find_stems(plain), Mix(), tmp_path / "plain.rpp").path.read_text()
    assert "<SOURCE MIDI" not in text
    stems = find_stems(with_midi(tmp_path / "midi"))
    written = write_aaf(stems, Mix(), tmp_path / "song")
    assert "holds audio only" in written.note and "vocals.mid" in written.note
    # a file that is no MIDI is left out, and the session says so
    (stems.paths[0].with_suffix(".mid")).write_bytes(b"not midi")
    written = write_rpp(stems, Mix(), tmp_path / "broken")
    assert "vocals.mid" in written.note and "vocals MIDI" not in written.path.read_text()
