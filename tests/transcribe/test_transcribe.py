"""MIDI from stems: known notes and hits, synthesised, come back as the notes of Standard MIDI Files (read back with
mido), with the tempo and key in them; the command line, `separate --midi`, the certificate, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from helpers import rpp_midi, run

from stemdesk.io.stems import CERTIFICATE
from stemdesk.transcribe.drums import drum_hits
from stemdesk.transcribe.pitched import BasicPitch, Note, one_voice
from stemdesk.transcribe.smf import estimate_key, estimate_tempo

RATE = 44100
# a melody in A minor at 100 BPM (0.6 s a beat): (start, end, MIDI note)
MELODY = [(0.6, 1.2, 69), (1.2, 1.8, 72), (1.8, 2.4, 76), (2.4, 3.0, 74), (3.0, 3.6, 72), (3.6, 4.8, 69)]
BASS = [(0.6, 1.8, 45), (1.8, 3.0, 41), (3.0, 4.2, 43), (4.2, 4.8, 45)]


def tones(notes, seconds: float = 5.4, level: float = 0.3) -> np.ndarray:
    """Each note as a tone with three harmonics and 10 ms fades, stereo."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    for start, end, pitch in notes:
        f = 440 * 2 ** ((pitch - 69) / 12)
        on = (t >= start) & (t < end)
        fade = np.minimum(1, np.minimum((t[on] - start) / 0.01, (end - t[on]) / 0.01))
        out[on] += level * fade * sum(np.sin(2 * np.pi * f * k * t[on]) / k for k in (1, 2, 3))
    return np.stack([out, out]).astype(np.float32)


def plucked(notes, attack: float = 0.0, seconds: float = 5.4, level: float = 0.3) -> np.ndarray:
    """`tones` plucked: each note dies away (by 8.7 dB a second) and, with ``attack``, swells in over that many
    seconds (the cube of a ramp): what a separation leaves of a note whose attack it gave to another stem."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    for start, end, pitch in notes:
        f = 440 * 2 ** ((pitch - 69) / 12)
        on = (t >= start) & (t < end)
        swell = ((t[on] - start) / attack) ** 3 if attack else np.inf
        fade = np.minimum(1, np.minimum(swell, (end - t[on]) / 0.01)) * np.exp(-(t[on] - start))
        out[on] += level * fade * sum(np.sin(2 * np.pi * f * k * t[on]) / k for k in (1, 2, 3))
    return np.stack([out, out]).astype(np.float32)


def drum_pattern(
    seconds: float = 5.4,
    beat: float = 0.6,
    only: tuple[int, ...] = (36, 38, 42),
    click: bool = False,
    together: tuple[int, ...] = (),
) -> tuple[np.ndarray, list[tuple[float, int]]]:
    """Kick on the beats 1 and 3, snare on 2 and 4, closed hi-hat on the off-beats: the signal and its hits (of the
    pieces ``only`` names). ``click``: the kick's beater clicks (4 ms ringing at 3 kHz, in the snare's band);
    ``together``: the beats (0–7) on which a snare sounds with the kick (the snare then as loud as the kick: the
    same energy)."""
    rng = np.random.default_rng(0)
    out = np.zeros(int(seconds * RATE))
    truth = []
    t = np.arange(int(0.3 * RATE)) / RATE
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12) * 0.8
    if click:  # a beater's click: 4 ms ringing at 3 kHz
        kick[: int(0.004 * RATE)] += np.sin(2 * np.pi * 3000 * t[: int(0.004 * RATE)]) * 0.15
    snare = (rng.standard_normal(t.size) * 0.4 + np.sin(2 * np.pi * 200 * t) * 0.3) * np.exp(-t * 25)
    if together:
        snare *= np.sqrt((kick**2).sum() / (snare**2).sum())
    noise = rng.standard_normal(int(0.05 * RATE))
    hat = np.diff(np.diff(noise, prepend=0), prepend=0) * 0.15 * np.exp(-np.arange(noise.size) / RATE * 80)
    for index in range(8):
        at = 0.6 + index * beat
        for sound, pitch, when in (
            (kick if index % 2 == 0 else snare, 36 if index % 2 == 0 else 38, at),
            *([(snare, 38, at)] if index in together else []),
            (hat, 42, at + beat / 2),
        ):
            if pitch not in only:
                continue
            start = int(when * RATE)
            end = min(out.size, start + sound.size)
            out[start:end] += sound[: end - start]
            truth.append((when, pitch))
    out *= 0.5  # below full scale, so a 24-bit file holds it unclipped
    return np.stack([out, out]).astype(np.float32), truth


def f_measure(found: list[tuple[float, int]], truth: list[tuple[float, int]], window: float = 0.05) -> float:
    """mir_eval's onset-and-pitch note F-measure, with one-to-one matching (greedy, in time order)."""
    unmatched = list(truth)
    hits = 0
    for start, pitch in sorted(found):
        match = next((t for t in unmatched if t[1] == pitch and abs(t[0] - start) <= window), None)
        if match is not None:
            unmatched.remove(match)
            hits += 1
    return 2 * hits / (len(found) + len(truth)) if found or truth else 1.0


def test_a_melody_and_a_bass_line_come_back_note_for_note(basic_pitch):
    pitch = BasicPitch(basic_pitch)
    for notes in (MELODY, BASS):
        found = pitch.transcribe(tones(notes), RATE, voices=1)
        assert f_measure([(n.start, n.pitch) for n in found], [(s, p) for s, _, p in notes]) == 1.0, found
        assert all(abs(n.end - end) < 0.06 for n, (_, end, _) in zip(found, notes))
        assert all(a.end <= b.start + 1e-9 for a, b in zip(found, found[1:]))  # one voice
    chord = pitch.transcribe(tones([(0.6, 2.4, 57), (0.6, 2.4, 60), (0.6, 2.4, 64)]), RATE)
    loudest = sorted(chord, key=lambda n: -n.velocity)[:3]
    # several voices where the stem has them (the tones' third harmonics, a twelfth up, come out as quieter notes)
    assert sorted(n.pitch for n in loudest) == [57, 60, 64] and all(abs(n.start - 0.6) < 0.05 for n in loudest)
    assert pitch.transcribe(np.zeros((2, RATE), np.float32), RATE) == []


def test_one_voice_keeps_the_louder_note_where_two_overlap():
    notes = [Note(0.0, 1.0, 60, 100), Note(0.5, 1.5, 64, 60), Note(1.2, 2.0, 67, 90)]
    assert one_voice(notes) == [Note(0.0, 1.0, 60, 100), Note(1.0, 1.2, 64, 60), Note(1.2, 2.0, 67, 90)]


def test_drum_hits_become_general_midi_notes_by_band_and_by_piece():
    audio, truth = drum_pattern()
    found = [(n.start, n.pitch) for n in drum_hits(audio, RATE)]
    assert f_measure(found, truth) == 1.0, found
    assert estimate_tempo([t for t, _ in truth], 5.4) == pytest.approx(100, abs=2)
    # a drum kit split into pieces: each child's hits, as its piece's notes
    for piece, pitch, gm in (("kick", 36, 36), ("snare", 38, 38), ("cymbals", 42, 42)):
        alone, hits = drum_pattern(only=(pitch,))
        assert f_measure([(n.start, n.pitch) for n in drum_hits(alone, RATE, piece)], [(t, gm) for t, _ in hits]) == 1
    # hi-hats alone: no kick or snare is made of their spill into the bands below
    hats, hat_hits = drum_pattern(only=(42,))
    assert f_measure([(n.start, n.pitch) for n in drum_hits(hats, RATE)], hat_hits) == 1.0
    assert drum_hits(np.zeros((2, RATE), np.float32), RATE) == []


def test_a_snare_played_with_a_kick_is_a_snare_and_a_kick_s_click_or_a_tambourine_with_it_is_not():
    # kicks whose click sounds in the snare's band (and jumps there as a snare does): no snare where they sound
    # alone, nor where a tambourine (noise, no drum shell) sounds with them; a snare where one sounds with them
    audio, truth = drum_pattern(click=True)
    assert f_measure([(n.start, n.pitch) for n in drum_hits(audio, RATE)], truth) == 1.0
    audio, truth = drum_pattern(click=True, together=(6,))
    length = int(0.15 * RATE)
    band = scipy.signal.butter(4, [2000, 8000], btype="band", fs=RATE, output="sos")
    tambourine = scipy.signal.sosfilt(band, np.random.default_rng(1).standard_normal(length)) * np.exp(
        -np.arange(length) / RATE * 30
    )
    for beat in (0, 4):  # with the kicks of beats 1 and 5
        start = int((0.6 + beat * 0.6) * RATE)
        audio[:, start : start + length] += (tambourine * 0.5).astype(np.float32)
    found = [(n.start, n.pitch) for n in drum_hits(audio, RATE)]
    for piece in (36, 38):
        assert f_measure([h for h in found if h[1] == piece], [h for h in truth if h[1] == piece]) == 1.0, found


def test_the_key_comes_from_the_notes():
    assert estimate_key([Note(s, e, p, 90) for s, e, p in MELODY + BASS]) == "A minor"
    assert estimate_key([Note(0, 1, p, 90) for p in (60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60)]) == "C major"
    assert estimate_key([]) is None


def stems_folder(folder: Path) -> Path:
    """A folder of stems as `separate` writes them (certificate included), holding the melody, bass and drums."""
    song = folder / "song"
    song.mkdir(parents=True)
    drums, _ = drum_pattern()
    parts = {"vocals": tones(MELODY), "drums": drums, "bass": tones(BASS), "other": np.zeros_like(drums)}
    for name, audio in parts.items():
        sf.write(str(song / f"{name}.wav"), audio.T, RATE, subtype="PCM_24")
    cert = {"kind": "stems", "outputs": [{"file": f"{n}.wav", "sha256": ""} for n in parts], "settings": {}}
    (song / CERTIFICATE).write_text(json.dumps(cert))
    return song


def notes_of(path: Path) -> tuple[list[tuple[float, int]], mido.MidiFile]:
    midi = mido.MidiFile(str(path))
    tempo = next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")
    found = []
    for track in midi.tracks[1:]:
        now = 0
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity:
                found.append((mido.tick2second(now, midi.ticks_per_beat, tempo), message.note))
    return found, midi


def test_stemdesk_midi_writes_a_file_per_stem_and_one_with_every_track(basic_pitch, tmp_path):
    folder = stems_folder(tmp_path)
    code, text, err = run("midi", folder)
    assert code == 0, err
    for name, notes in (("vocals", MELODY), ("bass", BASS)):
        found, midi = notes_of(folder / f"{name}.mid")
        assert f_measure(found, [(s, p) for s, _, p in notes]) == 1.0, (name, found)
        assert midi.tracks[1].name == name
    _, truth = drum_pattern()
    found, midi = notes_of(folder / "drums.mid")
    assert f_measure(found, truth) == 1.0 and all(m.channel == 9 for m in midi.tracks[1] if m.type == "note_on")
    found, midi = notes_of(folder / "other.mid")
    texts = [m.text for m in midi.tracks[1] if m.type == "text"]
    assert found == [] and texts == ["no notes: the stem is silent"]
    every, midi = notes_of(folder / "song.mid")
    assert [t.name for t in midi.tracks[1:]] == ["vocals", "drums", "bass", "other"]
    conductor = {m.type: m for m in midi.tracks[0]}
    assert mido.tempo2bpm(conductor["set_tempo"].tempo) == pytest.approx(100, abs=2)
    assert conductor["key_signature"].key == "Am"
    assert "A minor" in text and "vocals: 6 notes" in text
    cert = json.loads((folder / CERTIFICATE).read_text())
    assert cert["midi"]["files"] == ["vocals.mid", "drums.mid", "bass.mid", "other.mid", "song.mid"]
    assert cert["midi"]["part_of_null"] is False and [o["file"] for o in cert["outputs"]][0] == "vocals.wav"
    # quantised: on the sixteenth grid of the tempo found
    code, _, err = run("midi", folder, "--quantise")
    assert code == 0, err
    midi = mido.MidiFile(str(folder / "vocals.mid"))
    ticks, now = [], 0
    for message in midi.tracks[1]:
        now += message.time
        if message.type == "note_on":
            ticks.append(now)
    assert ticks and all(tick % (midi.ticks_per_beat // 4) == 0 for tick in ticks)


def test_a_bass_line_whose_attacks_went_to_another_stem_starts_where_the_song_has_them(basic_pitch, tmp_path):
    """The bass and vocals stems keep only their plucked notes' swell (90 ms), the other stem their attacks, as a
    separation that gives a note's pluck to the drums does: the stem alone puts every note 65-80 ms late, past the
    50 ms that counts as on time; `stemdesk midi` places the bass line's where the song (the stems' sum) has them,
    and leaves the melody's as the stem has them (on real songs moving a sung melody's did not agree better)."""
    song = tmp_path / "song"
    song.mkdir()
    bass, melody = plucked(BASS, attack=0.09), plucked(MELODY, attack=0.09)
    parts = {
        "vocals": melody,
        "drums": np.zeros_like(bass),
        "bass": bass,
        "other": plucked(BASS) - bass + plucked(MELODY) - melody,  # the attacks the separation gave away
    }
    for name, audio in parts.items():
        sf.write(str(song / f"{name}.wav"), audio.T, RATE, subtype="FLOAT")
    cert = {"kind": "stems", "outputs": [{"file": f"{n}.wav", "sha256": ""} for n in parts], "settings": {}}
    (song / CERTIFICATE).write_text(json.dumps(cert))
    pitch = BasicPitch(basic_pitch)
    alone = {}
    for name, notes in (("bass", BASS), ("vocals", MELODY)):
        alone[name] = pitch.transcribe(parts[name], RATE, voices=1)
        late = [n.start - start for n, (start, _, _) in zip(alone[name], notes)]
        assert [n.pitch for n in alone[name]] == [p for _, _, p in notes] and min(late) > 0.05, late
    code, _, err = run("midi", song)
    assert code == 0, err
    found, midi = notes_of(song / "bass.mid")
    assert f_measure(found, [(s, p) for s, _, p in BASS], window=0.02) == 1.0, found
    tempo = next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")
    ends, now = [], 0
    for message in midi.tracks[1]:
        now += message.time
        if message.type == "note_off" or (message.type == "note_on" and not message.velocity):
            ends.append(mido.tick2second(now, midi.ticks_per_beat, tempo))
    assert len(ends) == len(found)
    assert all(end <= start + 1e-3 for end, (start, _) in zip(ends, found[1:]))  # still one voice
    found, _ = notes_of(song / "vocals.mid")
    assert [p for _, p in found] == [n.pitch for n in alone["vocals"]]
    assert all(abs(t - n.start) < 2e-3 for (t, _), n in zip(found, alone["vocals"]))


def test_snapping_leaves_notes_alone_where_the_song_has_no_attack_near_them():
    """A note whose harmonics do not rise in the song near its start (a held pad in the mixture, or silence) keeps
    its start; a start never comes within 128 ms of the note before's."""
    from stemdesk.transcribe.pitched import snap_onsets

    notes = [Note(1.0, 2.0, 45, 80), Note(2.0, 3.0, 41, 80)]
    held = tones([(0.0, 4.0, 45), (0.0, 4.0, 41)])[0]
    assert snap_onsets(notes, held, RATE) == notes
    assert snap_onsets(notes, np.zeros(4 * RATE, np.float32), RATE) == notes
    # the second note's attack 100 ms early, but its note before started 50 ms before that: not taken
    close = [Note(1.0, 1.2, 45, 80), Note(1.2, 2.0, 41, 80)]
    attack = tones([(1.1, 2.0, 41)])[0]
    snapped = snap_onsets(close, attack, RATE)
    assert snapped[1].start >= 1.0 + 0.127 and snapped[0].end == snapped[1].start


def test_midi_without_basic_pitch_says_how_to_install_it_and_writes_nothing(tmp_path, song_file):
    folder = stems_folder(tmp_path)
    code, _, err = run("midi", folder)
    assert code != 0 and "stemdesk midi --install" in err and "models install" not in err  # one way, the right one
    assert not list(folder.glob("*.mid"))
    song = song_file()
    code, _, err = run("separate", song, "-o", tmp_path / "out", "--model", "tiny-4stem", "--midi")
    assert code != 0 and "stemdesk midi --install" in err and not (tmp_path / "out").exists()


def test_separate_with_midi_writes_them_beside_the_stems_and_into_its_sessions(basic_pitch, song_file, tmp_path):
    from stemdesk.session import tasks
    from stemdesk.transcribe.smf import read_notes

    song = song_file(seconds=3.0)
    code, text, err = run(
        "separate", song, "-o", tmp_path / "out", "--model", "tiny-4stem", "--midi", "--session", "rpp"
    )
    assert code == 0, err
    folder = tmp_path / "out" / "song"
    assert sorted(p.stem for p in folder.glob("*.mid")) == ["bass", "drums", "other", "song", "vocals"]
    assert "MIDI:" in text
    for path in folder.glob("*.mid"):
        mido.MidiFile(str(path))  # each a valid Standard MIDI File
    # the notes were written before the session, which carries them: a MIDI track per stem, as many notes
    project = (folder / "song.rpp").read_text()
    # with no --tempo the session runs at the tempo read from the notes: the DAW's grid is the song's
    tempo = json.loads((folder / CERTIFICATE).read_text())["midi"]["tempo_bpm"]
    assert f"  TEMPO {tempo:g} 4 4" in project.splitlines()
    tracks = rpp_midi(project)
    for stem in ("vocals", "drums", "bass", "other"):
        assert project.count(f'NAME "{stem} MIDI"') == 2  # one track (its name, its item's): no second one
        assert len(tracks[f"{stem} MIDI"]) == len(read_notes(folder / f"{stem}.mid"))
    # exported stems take their MIDI along
    made = tasks.export(folder, tmp_path / "export" / "song", tasks.ExportChoice(stems=True, instrumental=False)).run()
    for name in ("bass.mid", "drums.mid", "other.mid", "vocals.mid", "song.mid"):
        assert (made.stems / name).read_bytes() == (folder / name).read_bytes()


def test_the_api_writes_midi_as_the_command_line_does(basic_pitch, song_file, tmp_path):
    import stemdesk

    song = song_file(seconds=2.0)
    made = stemdesk.separate(song, "tiny-4stem", tmp_path / "out", midi=True, threads=1)
    assert set(made.midi) == {"vocals", "drums", "bass", "other", "song"} and all(
        p.is_file() for p in made.midi.values()
    )
    folder = stems_folder(tmp_path / "mine")
    again = stemdesk.midi(folder, threads=1)
    assert again.song == folder / "song.mid" and again.timing.key == "A minor" and again.notes["vocals"] == 6


def test_a_batch_with_midi_writes_what_separate_writes_and_redoes_a_song_whose_midi_is_gone(
    basic_pitch, song_file, tmp_path
):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for name, seconds in (("one", 2.0), ("two", 2.5)):
        song_file(seconds=seconds).rename(catalog / f"{name}.wav")
    out = tmp_path / "batch"
    code, _, err = run("batch", catalog, "-o", out, "--model", "tiny-4stem", "--workers", "1", "--midi")
    assert code == 0, err
    records = [json.loads(line) for line in (out / "stemdesk-batch.jsonl").read_text().splitlines()]
    assert {r["status"] for r in records} == {"done"}
    single = tmp_path / "single"
    code, _, err = run("separate", catalog / "one.wav", "-o", single, "--model", "tiny-4stem", "--midi")
    assert code == 0, err
    (one,) = [r for r in records if r["relative"] == "one"]
    assert sorted(one["midi"]) == sorted(f"one/{s}.mid" for s in ("bass", "drums", "other", "vocals", "one"))
    for name in one["midi"]:  # the same stems give the same notes, byte for byte
        assert (out / name).read_bytes() == (single / name).read_bytes()
    code, text, err = run("batch", catalog, "-o", out, "--model", "tiny-4stem", "--workers", "1", "--midi")
    assert code == 0 and "skipped 2" in text
    (out / "two" / "bass.mid").unlink()
    code, text, err = run("batch", catalog, "-o", out, "--model", "tiny-4stem", "--workers", "1", "--midi")
    assert code == 0 and "done 1, skipped 1" in text and (out / "two" / "bass.mid").is_file()


def test_a_long_stem_is_transcribed_in_pieces_with_the_notes_of_the_whole(basic_pitch, tmp_path, monkeypatch):
    from stemdesk.transcribe import pitched

    melody = [(start + 6.0 * k, end + 6.0 * k, pitch) for k in range(3) for start, end, pitch in MELODY]
    audio = tones(melody, seconds=18.0)
    path = tmp_path / "vocals.wav"
    sf.write(str(path), audio.T, RATE, subtype="FLOAT")
    model = BasicPitch()
    whole = model.transcribe(audio, RATE, voices=1)
    # pieces of 3.3 s hearing 4.9 s more on either side (more than a window of the network's, 2 s, and what its
    # layers hear beyond it)
    monkeypatch.setattr(pitched, "PIECE_SECONDS", 3.0)
    monkeypatch.setattr(pitched, "MARGIN_SECONDS", 4.0)
    pieces, _ = model.transcribe_file(path, voices=1)
    # the same notes; a start or an end may move by a frame or two where a piece infers onsets from its own largest
    # jump (Basic Pitch's decoding scales them by the file's)
    assert [n.pitch for n in pieces] == [n.pitch for n in whole]
    frame = pitched.HOP / pitched.RATE
    for a, b in zip(pieces, whole):
        assert abs(a.start - b.start) <= 1.5 * frame and abs(a.end - b.end) <= 2.5 * frame
    assert f_measure([(n.start, n.pitch) for n in pieces], [(s, p) for s, _, p in melody]) == 1.0
    # and placed on their attacks in a song read piece by piece as the stem is (here the song is the plucked line,
    # the stem its late swell): the notes the whole song gives
    from stemdesk.transcribe.stems import SongSpans

    monkeypatch.setattr(pitched, "PIECE_SECONDS", 300.0)
    song, late = tmp_path / "song.wav", tmp_path / "late.wav"
    sf.write(str(song), plucked(melody, seconds=18.0).T, RATE, subtype="FLOAT")
    sf.write(str(late), plucked(melody, attack=0.09, seconds=18.0).T, RATE, subtype="FLOAT")
    whole, _ = model.transcribe_file(late, voices=1, mixture=SongSpans([song]))
    monkeypatch.setattr(pitched, "PIECE_SECONDS", 3.0)
    pieces, _ = model.transcribe_file(late, voices=1, mixture=SongSpans([song]))
    assert [n.pitch for n in pieces] == [n.pitch for n in whole]
    assert all(abs(a.start - b.start) <= 256 / RATE for a, b in zip(pieces, whole))  # a step of the search's grid
    assert f_measure([(n.start, n.pitch) for n in pieces], [(s, p) for s, _, p in melody], window=0.02) == 1.0


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the child's peak memory from /proc")
def test_midi_of_half_an_hour_of_stems_stays_under_a_gigabyte(basic_pitch, tmp_path):
    """Stems are read in pieces: the memory `stemdesk midi` needs does not grow with their length (it held whole
    stems, and the drums' whole spectrum, before)."""
    import subprocess
    import sys

    seconds = 30 * 60
    folder = tmp_path / "long"
    folder.mkdir()
    drums, _ = drum_pattern()
    melody = tones(MELODY)
    with (
        sf.SoundFile(str(folder / "drums.wav"), "w", RATE, 2, "PCM_16") as kit,
        sf.SoundFile(str(folder / "vocals.wav"), "w", RATE, 2, "PCM_16") as voice,
    ):
        for at in range(0, seconds * RATE, drums.shape[1]):  # the drum pattern throughout, a melody at each end
            n = min(drums.shape[1], seconds * RATE - at)
            kit.write(drums[:, :n].T)
            sings = at < 20 * RATE or at > (seconds - 20) * RATE
            voice.write((melody[:, :n] if sings else np.zeros((2, n), np.float32)).T)
    # the child's own high-water mark (VmHWM): getrusage's ru_maxrss would count the pytest process it was forked
    # from, which Linux folds into it at exec
    code = (
        "import sys\nfrom stemdesk.cli import main\ncode = main(sys.argv[1:])\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print('peak', hwm)\nsys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "midi", str(folder)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.split("peak")[-1]) / 1024
    assert peak_mb < 1024, f"{peak_mb:.0f} MB"
    blocks = range(0, seconds * RATE, drums.shape[1])
    sung = sum(at < 20 * RATE or at > (seconds - 20) * RATE for at in blocks)
    found, _ = notes_of(folder / "vocals.mid")
    assert len(found) >= 0.9 * sung * len(MELODY)  # the melody at each end, nothing in the silence between
    assert all(t < 30 or t > seconds - 30 for t, _ in found)
    hits, _ = notes_of(folder / "drums.mid")
    assert abs(len(hits) - 16 * len(blocks)) <= 0.01 * 16 * len(blocks)  # the 16 hits of each bar of the pattern
