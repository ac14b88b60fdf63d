"""The LRC and UltraStar files StemDesk writes, read back by StemDesk's readers and by independent ones (lrcparser for
LRC, ultrastarparser for UltraStar TXT) where they are installed."""

from __future__ import annotations

import os

import pytest

from stemdesk.core.errors import StemDeskError
from stemdesk.karaoke.lrc import write_lrc
from stemdesk.karaoke.lyrics import parse_lyrics, read_lyrics
from stemdesk.karaoke.model import Line, Lyrics, Syllable, Word
from stemdesk.karaoke.ultrastar import DEFAULT_BPM, read_ultrastar, write_ultrastar

HALF_BEAT = 15.0 / DEFAULT_BPM / 2


def word(text, start, end, *syllables):
    """A word with its syllables: (text, start, end, pitch) each, or one syllable of the whole word."""
    parts = [Syllable(*s) for s in syllables] or [Syllable(text, start, end)]
    return Word(text, start, end, parts)


def aligned():
    """Aligned lyrics: two verses, a rest inside a line, syllables with pitches, hard Unicode words."""
    return Lyrics(
        [
            Line(
                [
                    word("Twinkle,", 1.0, 1.8, ("Twin", 1.0, 1.4, 67), ("kle,", 1.4, 1.8, 69)),
                    word("twinkle", 1.8, 2.6, ("twin", 1.8, 2.2, 67), ("kle", 2.2, 2.6, 65)),
                    word("😀\u00a0star", 3.13, 4.0, ("😀\u00a0star", 3.13, 4.0, None)),
                ]
            ),
            Line([word("مرحبا", 4.2, 4.9), word("שָׁלוֹם", 4.9, 5.55), word("你好世界", 5.6, 7.01)]),
            Line(
                [word("e\u0301te\u0301", 10.0, 10.5, ("e\u0301", 10.0, 10.2, 60), ("te\u0301", 10.2, 10.5, 62))],
                verse=1,
            ),
        ],
        language="es",
        title="Estrellita",
        artist="Anónimo",
    )


def spelled(lyrics):
    return [[w.text for w in line.words] for line in lyrics.lines]


def no_leftovers(folder):
    assert not [p.name for p in folder.iterdir() if ".part" in p.name]


# --- LRC -------------------------------------------------------------------------------------------------------------


def test_enhanced_lrc_round_trip_to_the_centisecond(tmp_path):
    lyrics = aligned()
    path = write_lrc(lyrics, tmp_path / "song.lrc", length=185.4, by="Ana")
    text = path.read_text(encoding="utf-8")
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf") and "\r" not in text
    head = text.split("\n\n")[0].split("\n")
    assert head[:4] == ["[ti:Estrellita]", "[ar:Anónimo]", "[by:Ana]", "[length:03:05]"]
    assert "[re:StemDesk]" in head
    # one word after each tag, a rest as an end tag at once followed by the next start tag, the line's end last
    assert "[00:01.00] <00:01.00> Twinkle, <00:01.80> twinkle <00:02.60> <00:03.13> 😀\u00a0star <00:04.00>" in text
    back = read_lyrics(path)
    assert spelled(back) == spelled(lyrics)
    assert (back.title, back.artist) == ("Estrellita", "Anónimo")
    assert [line.verse for line in back.lines] == [0, 0, 1]
    for got, want in zip(back.words, lyrics.words):
        assert (got.start, got.end) == (round(want.start, 2), round(want.end, 2)), got.text
    no_leftovers(tmp_path)


def test_enhanced_lrc_read_by_lrcparser(tmp_path):
    lrcparser = pytest.importorskip("lrcparser")
    lyrics = aligned()
    path = write_lrc(lyrics, tmp_path / "song.lrc")
    parsed = lrcparser.LrcParser.parse(path.read_text(encoding="utf-8"))
    assert parsed["attributes"]["ti"] == "Estrellita" and parsed["attributes"]["re"] == "StemDesk"
    lines = parsed["lrc_lines"]
    assert [float(line.start_time) for line in lines] == [1.0, 4.2, 10.0]
    for line, ours in zip(lines, lyrics.lines):
        segments = [(float(s.time), s.text.strip()) for s in line.text]
        spoken = [(time, text) for time, text in segments if text]
        assert spoken == [(round(w.start, 2), w.text) for w in ours.words]
        assert segments[-1] == (round(ours.end, 2), "")  # the line's end


def test_line_timed_lrc_round_trip_and_lrcparser(tmp_path):
    lyrics = aligned()
    path = write_lrc(lyrics, tmp_path / "lines.lrc", enhanced=False)
    text = path.read_text(encoding="utf-8")
    assert "[00:01.00]Twinkle, twinkle 😀\u00a0star\n[00:04.00]\n[00:04.20]مرحبا" in text
    back = parse_lyrics(text)
    assert spelled(back) == spelled(lyrics)
    assert [(line.start, line.end) for line in back.lines] == [(1.0, 4.0), (4.2, 7.01), (10.0, 10.5)]
    lrcparser = pytest.importorskip("lrcparser")
    parsed = lrcparser.LrcParser.parse(text)["lrc_lines"]
    timed = [(float(line.start_time), str(line.text)) for line in parsed]
    assert timed == [
        (1.0, "Twinkle, twinkle 😀\u00a0star"),
        (4.0, ""),
        (4.2, "مرحبا שָׁלוֹם 你好世界"),
        (7.01, ""),
        (10.0, "e\u0301te\u0301"),
        (10.5, ""),
    ]


def test_lrc_refuses_lines_it_cannot_time_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "song.lrc"
    path.write_text("old", encoding="utf-8")
    lyrics = aligned()
    lyrics.lines[1].words[1].start = None
    with pytest.raises(StemDeskError, match='Line 2 .*the word "שָׁלוֹם" has no time'):
        write_lrc(lyrics, path)
    write_lrc(lyrics, tmp_path / "lines.lrc", enhanced=False)  # a line-timed file needs only the lines' starts
    lyrics.lines[2].words[0].start = None
    with pytest.raises(StemDeskError, match="Line 3 .*has no start time"):
        write_lrc(lyrics, path, enhanced=False)
    overlapping = aligned()
    overlapping.lines[0].words[1].start = 1.5
    with pytest.raises(StemDeskError, match='"twinkle" starts before "Twinkle," ends'):
        write_lrc(overlapping, path)
    spaced = aligned()
    spaced.lines[0].words[0].text = "two words"
    with pytest.raises(StemDeskError, match="holds a space"):
        write_lrc(spaced, path)
    with pytest.raises(StemDeskError, match="no words"):
        write_lrc(Lyrics([]), path)
    assert path.read_text(encoding="utf-8") == "old"
    no_leftovers(tmp_path)


# --- UltraStar -------------------------------------------------------------------------------------------------------


def write_song(tmp_path, lyrics=None, **options):
    options = {"title": "Estrellita", "artist": "Anónimo", "audio_file": "song.ogg",
               "instrumental_file": "song [instrumental].ogg", "vocals_file": "song [vocals].ogg"} | options  # fmt: skip
    return write_ultrastar(aligned() if lyrics is None else lyrics, tmp_path / "song.txt", **options)


def body(path):
    rows = path.read_text(encoding="utf-8").split("\n")
    return [row for row in rows if row and not row.startswith("#")]


def test_ultrastar_headers_notes_and_round_trip(tmp_path):
    path = write_song(tmp_path)
    raw = path.read_bytes()
    assert raw.startswith(b"#VERSION:1.1.0\n") and b"\r" not in raw
    song = read_ultrastar(path)
    headers = song.headers
    assert headers["TITLE"] == "Estrellita" and headers["ARTIST"] == "Anónimo" and headers["LANGUAGE"] == "Spanish"
    assert headers["MP3"] == headers["AUDIO"] == "song.ogg"
    assert headers["INSTRUMENTAL"] == "song [instrumental].ogg" and headers["VOCALS"] == "song [vocals].ogg"
    assert headers["BPM"] == "600" and headers["GAP"] == "1000"
    assert "P1" not in headers and song.lyrics.language == "es"

    rows = body(path)
    assert rows[-1] == "E"
    assert rows[:4] == [": 0 16 7 Twin", ": 16 16 9 kle,", ": 32 16 7  twin", ": 48 16 5 kle"]
    # no pitch: freestyle, drawn at the line's median pitch (67 → 7); a word's first syllable carries the space
    assert rows[4] == "F 85 35 7  😀\u00a0star"
    assert rows[5] == "- 120"  # the line break at the end of the line's last note

    back = song.lyrics
    assert spelled(back) == spelled(aligned())
    for got, want in zip(back.words, aligned().words):
        assert [s.text for s in got.syllables] == [s.text for s in want.syllables]
        for g, w in zip(got.syllables, want.syllables):
            assert abs(g.start - w.start) <= HALF_BEAT + 1e-9 and abs(g.end - w.end) <= HALF_BEAT + 1e-9
            assert g.pitch == w.pitch  # None (freestyle) stays None
    no_leftovers(tmp_path)


def test_ultrastar_notes_never_overlap_and_breaks_fall_between_notes(tmp_path):
    lyrics = Lyrics(
        [
            Line([word("a", 1.0, 1.01), word("b", 1.005, 1.02), word("c", 1.02, 1.5)]),  # shorter than a beat
            Line([word("d", 1.5, 2.0)]),  # starts where the line before ends
        ]
    )
    rows = body(write_song(tmp_path, lyrics))
    notes, breaks = [], []
    for row in rows[:-1]:
        fields = row.split(" ", 4)
        if fields[0] == "-":
            breaks.append(int(fields[1]))
        else:
            notes.append((int(fields[1]), int(fields[2])))
    for (start, length), (following, _) in zip(notes, notes[1:]):
        assert length >= 1 and start + length <= following
    for beat in breaks:
        assert not any(start <= beat < start + length for start, length in notes)
        assert notes[0][0] < beat < notes[-1][0]


def test_ultrastar_read_by_ultrastarparser(tmp_path):
    ultrastarparser = pytest.importorskip("ultrastarparser")
    path = write_song(tmp_path)
    song = ultrastarparser.Song(str(path))
    assert song.get_version() == "1.1.0"
    assert song.get_attribute("TITLE") == "Estrellita" and song.get_attribute("ARTIST") == "Anónimo"
    assert song.get_primary_audio() == "song.ogg" and song.get_attribute("INSTRUMENTAL") == "song [instrumental].ogg"
    assert song.get_attribute("BPM") == "600"
    lines, current = [], ""
    for row in song.get_songtext():
        if row.startswith((":", "F", "*", "R", "G")):
            kind, start, length, pitch, text = row.split(" ", 4)
            current += text
        elif row.startswith(("-", "E")) and current:
            lines.append(current)
            current = ""
    assert lines == [line.text for line in aligned().lines]


def test_ultrastar_backing_lines_make_a_duet(tmp_path):
    lyrics = aligned()
    lyrics.lines[1].part = "backing"
    path = write_song(tmp_path, lyrics)
    song = read_ultrastar(path)
    assert (song.headers["P1"], song.headers["P2"]) == ("Lead", "Backing")
    rows = body(path)
    assert rows[0] == "P1" and "P2" in rows and rows[-1] == "E"
    assert [(line.part, line.text) for line in song.lyrics.lines] == [
        ("lead", lyrics.lines[0].text),
        ("lead", lyrics.lines[2].text),
        ("backing", lyrics.lines[1].text),
    ]


def test_ultrastar_audio_references_language_and_bpm(tmp_path):
    inside = tmp_path / "song.ogg"
    path = write_song(tmp_path, audio_file=str(inside.absolute()), language="Esperanto", bpm=300.5,
                      instrumental_file=None, vocals_file=None)  # fmt: skip
    song = read_ultrastar(path)
    assert song.headers["AUDIO"] == "song.ogg" and "INSTRUMENTAL" not in song.headers
    assert song.headers["LANGUAGE"] == "Esperanto" and song.bpm == 300.5
    with pytest.raises(StemDeskError, match="not in the song's folder"):
        write_song(tmp_path, audio_file=os.path.abspath(os.sep + "elsewhere.ogg"))


def test_ultrastar_refuses_untimed_words(tmp_path):
    lyrics = aligned()
    lyrics.lines[2].words[0].end = None
    with pytest.raises(StemDeskError, match='Line 3 .*"e\u0301te\u0301" has no time'):
        write_song(tmp_path, lyrics)
    assert not (tmp_path / "song.txt").exists()
    no_leftovers(tmp_path)


def test_read_ultrastar_reads_a_song_written_elsewhere(tmp_path):
    # the trailing-space convention, a comma BPM, a BOM, CRLF, a golden and a rap note, relative-free
    path = tmp_path / "other.txt"
    text = (
        "\ufeff#TITLE:Other\r\n#ARTIST:Someone\r\n#MP3:x.mp3\r\n#BPM:250,5\r\n#GAP:500\r\n"
        ": 0 4 0 Hel\r\n* 4 4 2 lo \r\nR 10 2 0 world\r\n- 14\r\n: 16 4 -3 again\r\nE\r\nignored after E\r\n"
    )
    path.write_bytes(text.encode("utf-8"))
    song = read_ultrastar(path)
    beat = 15 / 250.5
    assert spelled(song.lyrics) == [["Hello", "world"], ["again"]]
    hello = song.lyrics.lines[0].words[0]
    assert [(s.text, s.pitch) for s in hello.syllables] == [("Hel", 60), ("lo", 62)]
    assert hello.start == pytest.approx(0.5) and hello.end == pytest.approx(0.5 + 8 * beat)
    assert song.lyrics.lines[0].words[1].syllables[0].pitch is None  # rap: no pitch
    bad = tmp_path / "bad.txt"
    bad.write_text("#TITLE:x\n#BPM:300\n: 0 4 0 ok\n: zero 4 0 no\n", encoding="utf-8")
    with pytest.raises(StemDeskError, match='Line 4 of "bad.txt"'):
        read_ultrastar(bad)
