"""Lyrics in: plain text, LRC and ASS read into lines of words, every word as written, the times the file gives."""

from __future__ import annotations

import re

import pytest

from stemdesk.core.errors import StemDeskError
from stemdesk.karaoke.lyrics import MAX_LYRICS_BYTES, detect_kind, parse_lyrics, read_lyrics

# Words no reader may change: emoji (a ZWJ family, a flag, skin tone), Arabic and Hebrew (right to left), CJK,
# combining marks (e + U+0301, Devanagari), a no-break space inside a word, punctuation on the words.
HARD_WORDS = [
    "Hello,",
    "👨\u200d👩\u200d👧",
    "🇪🇸",
    "👍🏽",
    "مرحبا",
    "بالعالم!",
    "שָׁלוֹם",
    "你好世界",
    "e\u0301te\u0301",
    "नमस्ते",
    "l'amour\u00a0fou",
    "«¿qué?»",
]


def texts(lyrics):
    return [[word.text for word in line.words] for line in lyrics.lines]


def times(lyrics):
    return [[(word.start, word.end) for word in line.words] for line in lyrics.lines]


def assert_syllables_spell_words(lyrics):
    for word in lyrics.words:
        assert word.syllables, word.text
        assert "".join(s.text for s in word.syllables) == word.text
        assert word.syllables[0].start == word.start and word.syllables[-1].end == word.end


# --- plain text ------------------------------------------------------------------------------------------------------


def test_plain_text_lines_verses_and_words():
    lyrics = parse_lyrics("  Oh, say can you see\nBy the dawn's early light\n\n\n\nWhat so proudly we hailed  \n")
    assert texts(lyrics) == [
        ["Oh,", "say", "can", "you", "see"],
        ["By", "the", "dawn's", "early", "light"],
        ["What", "so", "proudly", "we", "hailed"],
    ]
    assert [line.verse for line in lyrics.lines] == [0, 0, 1]
    assert all(word.start is None and word.end is None for word in lyrics.words)
    assert_syllables_spell_words(lyrics)


def test_hard_words_survive_every_separator_and_line_end(tmp_path):
    # spaces, tabs, several spaces, an ideographic space between words; CRLF and CR line ends; a BOM
    first, second = HARD_WORDS[:6], HARD_WORDS[6:]
    text = (
        "\ufeff" + " \t ".join(first) + "\r\n\r\n" + "\u3000".join(second[:3]) + "\r" + "  ".join(second[3:]) + "\r\n"
    )
    path = tmp_path / "hard.txt"
    path.write_bytes(text.encode("utf-8"))
    for lyrics in (parse_lyrics(text), read_lyrics(path)):
        assert texts(lyrics) == [first, second[:3], second[3:]]
        assert [line.verse for line in lyrics.lines] == [0, 1, 1]
        assert "\ufeff" not in lyrics.words[0].text and not any("\r" in w.text for w in lyrics.words)
        assert_syllables_spell_words(lyrics)


def test_utf16_with_a_byte_order_mark_and_a_named_encoding(tmp_path):
    path = tmp_path / "utf16.txt"
    path.write_bytes("\r\n".join(HARD_WORDS).encode("utf-16"))  # Python writes the BOM
    assert [word.text for word in read_lyrics(path).words] == HARD_WORDS
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Café olé".encode("cp1252"))
    assert [word.text for word in read_lyrics(latin, encoding="cp1252").words] == ["Café", "olé"]


# --- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t\n", "\ufeff", "[ti:Song]\n[ar:Someone]\n[00:01.00]\n"])
def test_no_words_is_an_error(text):
    with pytest.raises(StemDeskError, match="no words"):
        parse_lyrics(text)


def test_a_binary_file_is_refused_saying_what_it_is(tmp_path):
    png = tmp_path / "cover.txt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(StemDeskError, match="NUL bytes.*not a text file"):
        read_lyrics(png)
    cp1252 = tmp_path / "old.txt"
    cp1252.write_bytes("Ça plaît à l'été".encode("cp1252"))
    with pytest.raises(StemDeskError, match=r'"old.txt" is not text in UTF-8 \(byte 0') as caught:
        read_lyrics(cp1252)
    assert caught.value.setting == "encoding"
    with pytest.raises(StemDeskError, match="not an encoding"):
        read_lyrics(cp1252, encoding="klingon")


def test_an_over_large_file_or_text_is_refused(tmp_path):
    big = tmp_path / "song.lrc"
    with open(big, "wb") as handle:
        handle.truncate(MAX_LYRICS_BYTES + 1)  # sparse: no time spent writing it
    with pytest.raises(StemDeskError, match='"song.lrc" is 4.2 MB'):
        read_lyrics(big)
    with pytest.raises(StemDeskError, match="characters long"):
        parse_lyrics("la " * (MAX_LYRICS_BYTES // 3 + 1))


@pytest.mark.parametrize(
    ("text", "line", "tag"),
    [
        ("[00:01.00]one\n[00:6x.00]two", 2, "[00:6x.00]"),
        ("[ti:x]\n\n[00:75.00]seconds past 59", 3, "[00:75.00]"),
        ("[00:01.00] <00:01.00> one <00:01:2:3> two", 1, "<00:01:2:3>"),
        ("[00:01.00]a\n[00:02.00]b\n[00:03.00] <0:3.x> c", 3, "<0:3.x>"),
    ],
)
def test_a_malformed_time_tag_names_its_line(text, line, tag):
    with pytest.raises(StemDeskError, match=re.escape(f'Line {line} of the lyrics: the time tag "{tag}"')):
        parse_lyrics(text)


def test_a_malformed_time_in_a_file_names_the_file_and_line(tmp_path):
    path = tmp_path / "song.ass"
    path.write_text("[Events]\nFormat: Layer, Start, End, Style, Text\nDialogue: 0,0:00:01.00,0:0x:02.00,Default,hi\n")
    with pytest.raises(StemDeskError, match=r'Line 3 of "song.ass": the time "0:0x:02.00"'):
        read_lyrics(path)


def test_an_unknown_kind_is_an_error():
    with pytest.raises(StemDeskError, match="text, lrc, ass"):
        parse_lyrics("la la", kind="midi")


# --- LRC -------------------------------------------------------------------------------------------------------------


def test_line_timed_lrc_with_repeats_metadata_offset_and_end_markers():
    lyrics = parse_lyrics(
        "[ti: Star Song ]\n[ar:The Band]\n[al:ignored]\n[offset:+250]\n"
        "[00:10.25]First line here\n"
        "[00:12.25][00:30.25]Chorus repeats\n"
        "[00:14.75]\n"
        "\n"
        "[00:20.25]Second verse\n"
        "[Chorus]\n"
    )
    assert (lyrics.title, lyrics.artist) == ("Star Song", "The Band")
    assert texts(lyrics) == [
        ["First", "line", "here"],
        ["Chorus", "repeats"],
        ["Second", "verse"],
        ["[Chorus]"],  # a line without a tag is kept: a word is never dropped
        ["Chorus", "repeats"],
    ]
    # the offset (+250 ms: shown sooner) moves every time; an empty tag ends the line before it
    assert times(lyrics)[0] == [(10.0, None), (None, None), (None, None)]
    assert times(lyrics)[1] == [(12.0, None), (None, 14.5)]
    assert times(lyrics)[4] == [(30.0, None), (None, None)]
    assert [line.verse for line in lyrics.lines] == [0, 0, 1, 1, 2]
    assert_syllables_spell_words(lyrics)


def test_enhanced_lrc_words_syllables_and_rests():
    lyrics = parse_lyrics(
        "[00:01.00] <00:01.00> Twin<00:01.40>kle <00:01.80> twin <00:02.00> <00:02.50> star <00:03.25>\n"
        "[00:04.00]<00:04.00>How <00:04.5>I <00:04.750>wonder<00:05.00>\n"
    )
    assert texts(lyrics) == [["Twinkle", "twin", "star"], ["How", "I", "wonder"]]
    assert times(lyrics) == [[(1.0, 1.8), (1.8, 2.0), (2.5, 3.25)], [(4.0, 4.5), (4.5, 4.75), (4.75, 5.0)]]
    twinkle = lyrics.lines[0].words[0]
    assert [(s.text, s.start, s.end) for s in twinkle.syllables] == [("Twin", 1.0, 1.4), ("kle", 1.4, 1.8)]
    assert_syllables_spell_words(lyrics)


def test_enhanced_lrc_keeps_hard_words_and_markup_like_text():
    line = " ".join(f"<00:{i:02d}.00> {word}" for i, word in enumerate(HARD_WORDS)) + " <00:59.00>"
    lyrics = parse_lyrics(f"[00:00.00] {line}\n[00:59.50]I <3 you <b>\n")
    assert texts(lyrics) == [HARD_WORDS, ["I", "<3", "you", "<b>"]]
    assert times(lyrics)[0][-1] == (11.0, 59.0)


# --- ASS -------------------------------------------------------------------------------------------------------------

ASS = """[Script Info]
Title: Karaoke Test
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize
Style: Default,Arial,40

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Comment: 0,0:00:00.00,0:00:01.00,Default,,0,0,0,,a comment is not sung
Dialogue: 0,0:00:05.00,0:00:07.00,Default,,0,0,0,,{\\an8}Second {\\i1}line,{\\i0} plain
Dialogue: 0,0:00:01.00,0:00:04.00,Default,,0,0,0,,{\\k50}Twin{\\kf40}kle, {\\K30}twin{\\ko20\\1c&H0000FF&}kle\\N{\\k0} {\\k60}star{\\k20}
Dialogue: 1,0:00:08.00,0:00:09.50,Default,,0,0,0,,{\\p1}m 0 0 l 100 0 100 100{\\p0}{\\k75}Up\\habove
"""


def test_ass_dialogue_karaoke_tags_and_stripped_overrides():
    lyrics = parse_lyrics(ASS)
    assert detect_kind(ASS) == "ass" and lyrics.title == "Karaoke Test"
    assert texts(lyrics) == [["Twinkle,", "twinkle", "star"], ["Second", "line,", "plain"], ["Up\u00a0above"]]
    first = lyrics.lines[0].words
    assert [(s.text, s.start, s.end) for s in first[0].syllables] == [("Twin", 1.0, 1.5), ("kle,", 1.5, 1.9)]
    assert [(s.text, s.start, s.end) for s in first[1].syllables] == [("twin", 1.9, 2.2), ("kle", 2.2, 2.4)]
    assert (first[2].start, first[2].end) == (2.4, 3.0)
    assert times(lyrics)[1] == [(5.0, None), (None, None), (None, 7.0)]  # no karaoke tags: the event's span
    assert times(lyrics)[2] == [(8.0, 8.75)]  # the drawing is not text
    assert_syllables_spell_words(lyrics)


def test_ass_with_generated_effect_lines_is_read_from_its_karaoke_comments():
    text = (
        "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Comment: 0,0:00:01.00,0:00:03.00,Default,,0,0,0,template syl,{\\pos($x,$y)}\n"
        "Comment: 0,0:00:01.00,0:00:03.00,Default,,0,0,0,karaoke,{\\k100}Hel{\\k100}lo\n"
        "Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,fx,{\\pos(10,10)}Hel\n"
        "Dialogue: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,fx,{\\pos(40,10)}lo\n"
    )
    lyrics = parse_lyrics(text)
    assert texts(lyrics) == [["Hello"]]
    assert [(s.text, s.start, s.end) for s in lyrics.words[0].syllables] == [("Hel", 1.0, 2.0), ("lo", 2.0, 3.0)]


def test_the_kind_is_told_from_the_text_and_the_file_name(tmp_path):
    assert detect_kind("just words\nand more") == "text"
    assert detect_kind("[ar:x]\n[01:02.03]words") == "lrc"
    assert detect_kind("[Verse 1]\nwords [00:00] in text") == "text"
    lrc = tmp_path / "song.lrc"
    lrc.write_text("[ti:x]\nuntimed words only\n", encoding="utf-8")
    lyrics = read_lyrics(lrc)
    assert lyrics.title == "x" and texts(lyrics) == [["untimed", "words", "only"]]
