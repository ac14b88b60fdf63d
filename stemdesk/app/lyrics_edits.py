"""The edits a user makes to the lyrics' times in the app, as functions from lyrics to new lyrics (the given ones
are never changed, so an undo step keeps both): a word's start or end dragged, a word or a whole line moved, and
tap to sync (the next word's, or line's, start set at the playhead).

A time a user set is the user's: the line it is in loses the aligner's confidence (`Line.confidence` None), so it is
no longer shown as unsure. A word's syllables keep their share of the word when the word is stretched or moved.
"""

from __future__ import annotations

import copy

from ..karaoke.model import Line, Lyrics, Word

MIN_WORD = 0.05  # s: a word is never shorter
TAP_WORD = 0.4  # s: a tapped word's length until the next tap ends it
TAP_SLACK = 0.5  # s: tapping goes on from the first word that starts no earlier than this before the playhead


def word_at(lyrics: Lyrics, index: int) -> tuple[int, int]:
    """(line, word in the line) of the ``index``-th word of the song."""
    for number, line in enumerate(lyrics.lines):
        if index < len(line.words):
            return number, index
        index -= len(line.words)
    raise IndexError(index)


def index_of(lyrics: Lyrics, line: int, word: int) -> int:
    """The song-wide index of word ``word`` of line ``line``."""
    return sum(len(lyrics.lines[n].words) for n in range(line)) + word


def _retime(word: Word, start: float, end: float) -> None:
    """Give ``word`` these times; its syllables keep their share of it."""
    if word.start is not None and word.end is not None and word.end > word.start:
        scale = (end - start) / (word.end - word.start)
        for syllable in word.syllables:
            if syllable.start is not None:
                syllable.start = start + (syllable.start - word.start) * scale
            if syllable.end is not None:
                syllable.end = start + (syllable.end - word.start) * scale
    word.start, word.end = start, end


def _shift(line: Line, seconds: float) -> None:
    for word in line.words:
        if word.start is not None and word.end is not None:
            _retime(word, word.start + seconds, word.end + seconds)


def drag_word(lyrics: Lyrics, line: int, word: int, part: str, seconds: float, length: float) -> Lyrics:
    """Lyrics with a timed word's ``part`` ("start", "end" or "move": both) moved by ``seconds``, kept within the
    song (``length`` seconds) and at least MIN_WORD long."""
    after = copy.deepcopy(lyrics)
    target = after.lines[line].words[word]
    assert target.start is not None and target.end is not None
    start, end = target.start, target.end
    if part == "start":
        start = min(max(0.0, start + seconds), end - MIN_WORD)
    elif part == "end":
        end = max(min(length, end + seconds), start + MIN_WORD)
    else:
        seconds = min(max(seconds, -start), length - end)
        start, end = start + seconds, end + seconds
    _retime(target, start, end)
    after.lines[line].confidence = None
    return after


def move_line(lyrics: Lyrics, line: int, seconds: float, length: float) -> Lyrics:
    """Lyrics with every timed word of ``line`` moved by ``seconds``, the line kept within the song."""
    after = copy.deepcopy(lyrics)
    moved = after.lines[line]
    starts = [w.start for w in moved.words if w.start is not None]
    ends = [w.end for w in moved.words if w.end is not None]
    if starts and ends:
        seconds = min(max(seconds, -min(starts)), length - max(ends))
        _shift(moved, seconds)
        moved.confidence = None
    return after


def next_to_tap(lyrics: Lyrics, at: float) -> int:
    """Where tapping starts when it starts at ``at`` seconds: the first word without a time, or starting no
    earlier than TAP_SLACK before ``at`` (the number of words when there is none)."""
    words = lyrics.words
    return next(
        (i for i, word in enumerate(words) if word.start is None or word.start >= at - TAP_SLACK),
        len(words),
    )


def tap(lyrics: Lyrics, index: int, at: float, whole_line: bool = False) -> tuple[Lyrics, int]:
    """Tap to sync: the ``index``-th word starts at ``at`` (``whole_line``: the line it is the first word of, or
    else the next line, starts there, a timed line moved whole). Within a line the word before ends where the
    tapped one starts; across lines it is shortened only where it would overrun. Returns the new lyrics and the
    index of the word the next tap sets."""
    after = copy.deepcopy(lyrics)
    total = len(after.words)
    if index >= total:
        return after, total
    line, word = word_at(after, index)
    if whole_line and word > 0:
        line, word = line + 1, 0
        if line >= len(after.lines):
            return after, total
        index = index_of(after, line, 0)
        while not after.lines[line].words:  # an empty line has nothing to start
            line += 1
            if line >= len(after.lines):
                return after, total
    target_line = after.lines[line]
    target = target_line.words[word]
    following = index + 1
    if whole_line and target_line.start is not None and all(w.timed for w in target_line.words):
        _shift(target_line, at - target_line.start)
        following = index_of(after, line, 0) + len(target_line.words)
    else:
        end = target.end if target.end is not None and target.end > at + MIN_WORD else at + TAP_WORD
        target.start = target.end = None  # set afresh: its syllables, if any, are spread anew below
        _retime(target, at, end)
        for syllable, (a, b) in zip(target.syllables, _spread(at, end, len(target.syllables))):
            syllable.start, syllable.end = a, b
    target_line.confidence = None
    if index > 0:
        previous_line, previous_word = word_at(after, index - 1)
        previous = after.lines[previous_line].words[previous_word]
        if previous.start is not None and previous.start < at:
            overruns = previous.end is None or previous.end > at
            if previous_line == line or overruns:
                _retime(previous, previous.start, max(previous.start + MIN_WORD / 2, at))
                after.lines[previous_line].confidence = None
    return after, following


def _spread(start: float, end: float, count: int) -> list[tuple[float, float]]:
    step = (end - start) / max(1, count)
    return [(start + i * step, start + (i + 1) * step) for i in range(count)]
