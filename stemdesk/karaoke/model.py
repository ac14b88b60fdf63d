"""The lyrics of a song as StemDesk holds them: lines of words, each word with its start and end in seconds once
aligned (None before), its syllables and, where known, the sung note of each syllable.

Times are seconds from the start of the song. A line keeps the words in the order the text has them; ``verse`` counts
the blank-line-separated blocks of the text (0 for the first), so writers can leave the gaps the text has. ``part`` is
who sings the line: "lead", or "backing" where the vocal split says the backing voices carry it (shown in another
colour). ``confidence`` (0…1) is the aligner's for the line; None before alignment or for times a user set.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Syllable:
    """One sung syllable: its text as written inside the word, its time, and its note (MIDI number) if known."""

    text: str
    start: float | None = None
    end: float | None = None
    pitch: int | None = None


@dataclass
class Word:
    """A word as written (punctuation kept), its time and its syllables (their texts join to ``text``)."""

    text: str
    start: float | None = None
    end: float | None = None
    syllables: list[Syllable] = field(default_factory=list)

    @property
    def timed(self) -> bool:
        return self.start is not None and self.end is not None


@dataclass
class Line:
    """One sung line: its words in order, the verse it belongs to, who sings it, the aligner's confidence."""

    words: list[Word]
    verse: int = 0
    part: str = "lead"
    confidence: float | None = None

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)

    @property
    def start(self) -> float | None:
        return self.words[0].start if self.words else None

    @property
    def end(self) -> float | None:
        return self.words[-1].end if self.words else None


@dataclass
class Lyrics:
    """A song's lyrics: its lines in order, the language if known (ISO 639-1, e.g. "es"), and the title and artist
    that karaoke files carry."""

    lines: list[Line]
    language: str | None = None
    title: str = ""
    artist: str = ""

    @property
    def words(self) -> list[Word]:
        return [word for line in self.lines for word in line.words]

    @property
    def timed(self) -> bool:
        return all(word.timed for word in self.words)
