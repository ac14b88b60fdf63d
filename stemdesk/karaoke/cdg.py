"""Karaoke as CD+G: the subcode graphics of karaoke CDs, which karaoke machines and players (KaraFun, VLC, pikaraoke,
hardware CD+G players) show beside an MP3 of the same name.

A .cdg file is a stream of 24-byte packets, 300 a second (4 per CD sector, 75 sectors a second). Each packet is one
command: clear the screen (MEMORY_PRESET) or its border (BORDER_PRESET), load 8 of the 16 colours
(LOAD_COLOR_TABLE_LO/HI), or draw one 6×12 tile of the 300×216 screen in two of the colours (TILE_BLOCK), or XOR two
colour indexes into one (TILE_BLOCK_XOR). A player shows only what the packets have drawn so far, so everything on
screen must be drawn in time, at 300 packets a second.

The screens are `stemdesk.karaoke.screen`'s plan, the same as the ASS file's and the video's. Text is drawn with
DejaVu Sans Bold (Pillow, no anti-aliasing: 16 colours), outlined in black. Colour indexes are chosen so that a sung
colour is its unsung colour XOR 1: a word fills by XOR-ing 1 into the tiles under it as the singing reaches them,
one packet per tile and word, and the next line's dimmer colour is the same index with another colour loaded (one
packet for the whole line). A line is drawn when its slot frees, while the other slot's line is sung, and its tiles
are sent in deadline order with the fills (earliest deadline first): the fills at their time, the drawing as soon as
the budget allows.

The file is written packet by packet as the song goes, one line at a time, so a 2-hour song takes no more memory
than a 3-minute one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..core.errors import AudioError
from ..io.atomic import atomic_path
from ..io.audio import AtomicAudioWriter, iter_blocks, probe
from ..io.formats import OutputFormat
from . import screen
from .model import Lyrics
from .screen import Layout, ShownLine

PACKETS_PER_SECOND = 300
PACKET = 24
WIDTH, HEIGHT = 300, 216
TILE_WIDTH, TILE_HEIGHT = 6, 12
COLUMNS, ROWS = WIDTH // TILE_WIDTH, HEIGHT // TILE_HEIGHT
CDG_COMMAND = 0x09
MEMORY_PRESET, BORDER_PRESET, TILE_BLOCK, TILE_BLOCK_XOR = 1, 2, 6, 38
LOAD_COLOR_TABLE_LO, LOAD_COLOR_TABLE_HI = 30, 31

# Colour indexes. A sung colour is its unsung one XOR 1, and the outline is 1, so the same XOR fills any line.
BACKGROUND, OUTLINE = 0, 1
UNSUNG = {(0, "lead"): 2, (0, "backing"): 4, (1, "lead"): 10, (1, "backing"): 12}  # (slot, part) → index
TITLE, ARTIST = 6, 7
DOTS = (8, 9, 14)  # the count-in's dots, each its own index: a dot goes by loading the background colour into it

# The picture: a player shows 288×192 inside a border of 6 pixels left and right and 12 top and bottom.
LEFT, RIGHT = 6 + 3, WIDTH - 6 - 3
SLOT_REGIONS = ((3, 9), (9, 15))  # tile rows [first, last) of each slot: no tile is shared between the slots
SLOT0_BOTTOM, SLOT1_TOP = 9 * TILE_HEIGHT - 2, 9 * TILE_HEIGHT + 2
SLOT_HEIGHT = 54
SIZES = (20, 16, 13)  # pixels per em; 20 gives about 22 letters a row


def _rgb12(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(round(channel / 17) for channel in rgb)  # type: ignore[return-value]


def _palette() -> list[tuple[int, int, int]]:
    colours = [screen.BACKGROUND_TOP] * 16
    colours[OUTLINE] = screen.OUTLINE
    for (_, part), index in UNSUNG.items():
        backing = part == "backing"
        colours[index] = screen.BACKING_UNSUNG if backing else screen.LEAD_UNSUNG
        colours[index ^ 1] = screen.BACKING_SUNG if backing else screen.LEAD_SUNG
    colours[TITLE], colours[ARTIST] = screen.TITLE_COLOUR, screen.ARTIST_COLOUR
    return [_rgb12(colour) for colour in colours]


def _packet(instruction: int, data: bytes) -> bytes:
    """One subcode packet: command, instruction, two parity bytes (unused by players), 16 data bytes, four parity."""
    return bytes((CDG_COMMAND, instruction, 0, 0)) + data.ljust(16, b"\0") + bytes(4)


def memory_preset(colour: int) -> bytes:
    return _packet(MEMORY_PRESET, bytes((colour & 0x0F, 0)))


def border_preset(colour: int) -> bytes:
    return _packet(BORDER_PRESET, bytes((colour & 0x0F,)))


def color_table(colours: list[tuple[int, int, int]], high: bool) -> bytes:
    """Colours 0–7 (or 8–15 when ``high``), each 4 bits a channel packed as --rrrrgg --ggbbbb."""
    data = bytearray()
    for red, green, blue in colours[8:] if high else colours[:8]:
        data += bytes((((red & 15) << 2) | ((green & 15) >> 2), ((green & 3) << 4) | (blue & 15)))
    return _packet(LOAD_COLOR_TABLE_HI if high else LOAD_COLOR_TABLE_LO, bytes(data))


_BITS = np.array([32, 16, 8, 4, 2, 1], dtype=np.uint8)


def tile(row: int, column: int, colour0: int, colour1: int, mask: np.ndarray, xor: bool = False) -> bytes:
    """A TILE_BLOCK (or TILE_BLOCK_XOR) packet for tile (row, column): mask (12, 6) bool, True where colour1 goes."""
    lines = (mask.astype(np.uint8) * _BITS).sum(axis=1).astype(np.uint8).tobytes()
    data = bytes((colour0 & 0x0F, colour1 & 0x0F, row & 0x1F, column & 0x3F)) + lines
    return _packet(TILE_BLOCK_XOR if xor else TILE_BLOCK, data)


# Layout ------------------------------------------------------------------------------------------------------------


def _font(size: float):
    return screen.pillow_font(max(6, round(size)))


def _row_height(size: float) -> float:
    ascent, descent = _font(size).getmetrics()
    return ascent + descent + 2


def layout() -> Layout:
    """The geometry the CD+G screen lays lines out in (the outline takes a pixel each side)."""
    return Layout(RIGHT - LEFT, SLOT_HEIGHT, SIZES, lambda text, size: _font(size).getlength(text) + 2, _row_height)


def _row_top(shown: ShownLine, row: int) -> int:
    pitch = _row_height(shown.size)
    if shown.slot == 0:
        return round(SLOT0_BOTTOM - (len(shown.rows) - row) * pitch)
    return round(SLOT1_TOP + row * pitch)


@dataclass
class _Picture:
    """A slot's (or the title card's) pixels as colour indexes (216, 300) and when each filled pixel fills
    (inf: never), with which piece (-1: none)."""

    colours: np.ndarray
    times: np.ndarray
    pieces: np.ndarray


def _draw_text(picture: _Picture, text: str, x: float, y: float, size: float, colour: int):
    """Draw ``text`` outlined at (x, y) (top left); returns the mask of its fill pixels."""
    Image, ImageDraw, _ = screen.pillow()
    image = Image.new("L", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # 16 colours: no anti-aliasing
    draw.text((x + 1, y + 1), text, font=_font(size), fill=2, stroke_width=1, stroke_fill=1)
    drawn = np.asarray(image)
    picture.colours[drawn == 1] = OUTLINE
    fill = drawn == 2
    picture.colours[fill] = colour
    return fill


def _blank() -> _Picture:
    return _Picture(
        np.zeros((HEIGHT, WIDTH), np.uint8), np.full((HEIGHT, WIDTH), np.inf), np.full((HEIGHT, WIDTH), -1, np.int32)
    )


def _line_picture(shown: ShownLine) -> _Picture:
    """The line in its slot: each row centred, and each fill pixel's time: the fill crosses each piece from its
    left to its right edge during its singing."""
    picture = _blank()
    colour = UNSUNG[shown.slot, "backing" if shown.backing else "lead"]
    font = _font(shown.size)
    pitch = _row_height(shown.size)
    number = 0
    for index, row in enumerate(shown.rows):
        text = screen.row_text(row)
        width = font.getlength(text) + 2
        left = LEFT + (RIGHT - LEFT - width) / 2
        top = _row_top(shown, index)
        fill = _draw_text(picture, text, left, top, shown.size, colour)
        band = np.zeros_like(fill)
        band[max(0, top) : min(HEIGHT, round(top + pitch)), :] = True
        fill &= band
        prefix, edges = "", []
        for piece in row:
            edges.append((left + 1 + font.getlength(prefix), left + 1 + font.getlength(prefix + piece.text)))
            prefix += piece.text + (" " if piece.space else "")
        columns = np.arange(WIDTH) + 0.5
        times = np.full(WIDTH, np.inf)
        owner = np.full(WIDTH, -1, np.int32)
        for at, (piece, (a, b)) in enumerate(zip(row, edges)):
            following = edges[at + 1][0] if at + 1 < len(row) else WIDTH
            here = (columns >= (a if at else 0)) & (columns < following)
            share = np.clip((columns - a) / max(b - a, 1e-6), 0.0, 1.0)
            times[here] = piece.start + share[here] * (piece.end - piece.start)
            owner[here] = number + at
        number += len(row)
        rows, cols = np.nonzero(fill)
        picture.times[rows, cols] = times[cols]
        picture.pieces[rows, cols] = owner[cols]
    if shown.count_in:
        y = _row_top(shown, 0) - 9
        Image, ImageDraw, _ = screen.pillow()
        image = Image.new("L", (WIDTH, HEIGHT), 0)
        draw = ImageDraw.Draw(image)
        for index, dot in enumerate(DOTS):
            x = WIDTH / 2 + (index - 1) * 16
            draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill=dot)  # no outline: a dot goes entirely
        drawn = np.asarray(image)
        picture.colours[drawn != 0] = drawn[drawn != 0]
    return picture


def _title_picture(card: screen.TitleCard) -> _Picture:
    picture = _blank()
    shape = layout()
    blocks: list[tuple[float, list[str], int]] = []
    for name, sizes, colour in ((card.title, (26, 20, 16, 13), TITLE), (card.artist, (18, 14, 12), ARTIST)):
        if name:
            words = [(word, 0.0, 0.0) for word in name.split()]
            title_layout = Layout(shape.width, 3 * _row_height(sizes[0]), sizes, shape.measure, _row_height)
            screens = screen.fit_line(words, title_layout)  # a title too long for one screen: all its rows
            blocks.append((screens[0][0], [screen.row_text(row) for _, rows in screens for row in rows], colour))
    height = sum(_row_height(size) * len(rows) for size, rows, _ in blocks) + 8 * (len(blocks) - 1)
    top = (HEIGHT - height) / 2
    for size, texts, colour in blocks:
        for text in texts:
            width = _font(size).getlength(text) + 2
            _draw_text(picture, text, LEFT + (RIGHT - LEFT - width) / 2, top, size, colour)
            top += _row_height(size)
        top += 8
    return picture


# Packets in time ----------------------------------------------------------------------------------------------------


@dataclass
class _Task:
    """A packet due no earlier than ``earliest`` (seconds), needed by ``deadline``; ``packet`` makes it when sent
    (a colour table is made from the colours of that moment)."""

    earliest: float
    deadline: float
    packet: Callable[[], bytes]


def _tiles(rows: tuple[int, int]) -> Iterator[tuple[int, int, slice, slice]]:
    for row in range(*rows):
        for column in range(COLUMNS):
            yield (
                row,
                column,
                slice(row * TILE_HEIGHT, (row + 1) * TILE_HEIGHT),
                slice(column * TILE_WIDTH, (column + 1) * TILE_WIDTH),
            )


def _draw_tasks(
    picture: _Picture, rows: tuple[int, int], ink: set[tuple[int, int]], earliest: float, deadline: float
) -> Iterator[_Task]:
    """Packets that draw ``picture`` over tile ``rows`` (tiles that held ink and now hold none are cleared); ``ink``
    becomes the tiles it inks."""
    drawn = set()
    for row, column, ys, xs in _tiles(rows):
        colours = picture.colours[ys, xs]
        if not colours.any():
            if (row, column) in ink:
                yield _Task(earliest, deadline, _fixed(tile(row, column, BACKGROUND, BACKGROUND, colours > 0)))
            continue
        drawn.add((row, column))
        yield _Task(earliest, deadline, _fixed(tile(row, column, BACKGROUND, OUTLINE, colours > 0)))
        for colour in np.unique(colours):
            if colour > OUTLINE:
                packet = tile(row, column, 0, OUTLINE ^ int(colour), colours == colour, xor=True)
                yield _Task(earliest, deadline, _fixed(packet))
    ink.clear()
    ink.update(drawn)


def _fill_tasks(picture: _Picture, rows: tuple[int, int]) -> list[_Task]:
    """One XOR of 1 per tile and piece, when the fill reaches the middle of the piece's pixels in that tile."""
    tasks = []
    for row, column, ys, xs in _tiles(rows):
        pieces = picture.pieces[ys, xs]
        for piece in np.unique(pieces[pieces >= 0]):
            mask = pieces == piece
            when = float(np.median(picture.times[ys, xs][mask]))
            tasks.append(_Task(when, when, _fixed(tile(row, column, 0, 1, mask, xor=True))))
    tasks.sort(key=lambda task: task.earliest)
    return tasks


def _fixed(packet: bytes) -> Callable[[], bytes]:
    return lambda: packet


class _Colours:
    """The colour table as the player has it; `change` makes the task that loads a new colour into an index."""

    def __init__(self) -> None:
        self.colours = _palette()

    def change(self, index: int, rgb: tuple[int, int, int], when: float) -> _Task:
        def packet() -> bytes:
            self.colours[index] = _rgb12(rgb)
            return color_table(self.colours, high=index >= 8)

        return _Task(when, when, packet)


def _slot_tasks(lines: list[ShownLine], colours: _Colours) -> Iterator[_Task]:
    """Each line of one slot in a phrase, in turn: dim its colour if it waits as the next line, draw it, load its
    bright colour when it becomes current, fill it as sung. Made one line at a time, as the sending reaches it."""
    ink: set[tuple[int, int]] = set()
    for shown in lines:
        rows = SLOT_REGIONS[shown.slot]
        picture = _line_picture(shown)
        index = UNSUNG[shown.slot, "backing" if shown.backing else "lead"]
        bright = screen.BACKING_UNSUNG if shown.backing else screen.LEAD_UNSUNG
        if shown.active > shown.appear:
            yield colours.change(index, screen.BACKING_NEXT if shown.backing else screen.LEAD_NEXT, shown.appear)
        else:
            yield colours.change(index, bright, shown.appear)
        yield from _draw_tasks(picture, rows, ink, shown.appear, shown.start)
        if shown.active > shown.appear:
            yield colours.change(index, bright, shown.active)
        yield from _fill_tasks(picture, rows)


def _phrase_tasks(phrase: list[ShownLine], colours: _Colours) -> Iterator[_Task]:
    """The phrase's own: the screen cleared when it appears, the count-in's dots, the screen cleared when it goes."""
    appear, gone = phrase[0].appear, max(shown.gone for shown in phrase)
    yield _Task(appear, appear - 1.0, _fixed(memory_preset(BACKGROUND)))
    for dot in DOTS:
        yield colours.change(dot, screen.BACKGROUND_TOP, appear)
    for shown in phrase:
        if shown.count_in:
            start = shown.start
            for dot in DOTS:
                yield colours.change(dot, screen.COUNT_IN_COLOUR, max(appear, start - screen.COUNT_IN))
            for number, dot in enumerate(reversed(DOTS)):
                yield colours.change(dot, screen.BACKGROUND_TOP, start - (screen.COUNT_IN - 1) + number)
    yield _Task(gone, math.inf, _fixed(memory_preset(BACKGROUND)))


class _Sender:
    """Sends packets at 300 a second into ``handle``, at most ``total`` of them: what is due goes out earliest
    deadline first, and when nothing is due the stream idles (empty packets, which players skip)."""

    def __init__(self, handle: BinaryIO, total: int):
        self.handle, self.total, self.sent = handle, total, 0
        self.buffer = bytearray()

    @property
    def full(self) -> bool:
        return self.sent >= self.total

    def send(self, packet: bytes) -> None:
        if not self.full:
            self.buffer += packet
            self.sent += 1
            if len(self.buffer) >= 1 << 20:
                self.flush()

    def idle_until(self, packet: int) -> None:
        count = max(0, min(packet, self.total) - self.sent)
        self.buffer += bytes(PACKET * count)
        self.sent += count
        self.flush()

    def flush(self) -> None:
        self.handle.write(self.buffer)
        self.buffer.clear()

    def run(self, queues: list[Iterator[_Task]]) -> None:
        """Send every queue's tasks, each queue in its order: of the queues whose next task is due, the one with
        the earliest deadline goes first."""
        pending = {number: task for number, queue in enumerate(queues) if (task := next(queue, None)) is not None}
        while pending and not self.full:
            now = self.sent / PACKETS_PER_SECOND
            due = [(task.deadline, number) for number, task in pending.items() if task.earliest <= now + 1e-9]
            if not due:
                self.idle_until(math.ceil(min(task.earliest for task in pending.values()) * PACKETS_PER_SECOND))
                continue
            _, number = min(due)
            self.send(pending[number].packet())
            following = next(queues[number], None)
            if following is None:
                del pending[number]
            else:
                pending[number] = following


def _phrases(plan: screen.Plan) -> Iterator[list[ShownLine]]:
    """The plan's lines in phrases: a phrase starts when a line appears on an empty screen."""
    phrase: list[ShownLine] = []
    gone = -math.inf
    for shown in plan.lines:
        if phrase and shown.appear >= gone:
            yield phrase
            phrase = []
        phrase.append(shown)
        gone = max(gone, shown.gone)
    if phrase:
        yield phrase


def _write_packets(handle: BinaryIO, lyrics: Lyrics, duration: float, title: str, artist: str) -> int:
    plan = screen.plan(lyrics, layout(), title=title, artist=artist)
    sender = _Sender(handle, math.ceil(duration * PACKETS_PER_SECOND))
    colours = _Colours()
    start = [color_table(colours.colours, False), color_table(colours.colours, True)]
    start += [border_preset(BACKGROUND), memory_preset(BACKGROUND)]
    for packet in start:
        sender.send(packet)
    if plan.title is not None:
        card = _title_picture(plan.title)
        sender.run([_draw_tasks(card, (1, ROWS - 1), set(), 0.0, plan.title.end)])
    for phrase in _phrases(plan):
        slots = [[shown for shown in phrase if shown.slot == slot] for slot in (0, 1)]
        sender.run([_phrase_tasks(phrase, colours), *(_slot_tasks(lines, colours) for lines in slots)])
        if sender.full:
            break
    sender.idle_until(sender.total)
    sender.flush()
    return sender.sent


def write_cdg(lyrics: Lyrics, path: str | os.PathLike, *, duration: float, title: str = "", artist: str = "") -> Path:
    """Write the karaoke as a CD+G file ``duration`` seconds long (the song's length), atomically. ``title`` and
    ``artist`` (else the lyrics' own) make the title card. Raises LyricsNotTimed when a word has no time."""
    screen.check_timed(lyrics)
    if not duration > 0 or not math.isfinite(duration):
        raise AudioError(f"A CD+G file needs the song's length in seconds, more than 0 (got {duration}).")
    path = Path(path)
    with atomic_path(path) as temp:
        with open(temp, "wb") as handle:
            _write_packets(handle, lyrics, duration, title, artist)
            handle.flush()
            os.fsync(handle.fileno())
    return path


MP3_RATES = (32000, 44100, 48000)


def write_cdg_mp3(
    lyrics: Lyrics, audio_path: str | os.PathLike, out_base: str | os.PathLike, *, title: str = "", artist: str = ""
) -> tuple[Path, Path]:
    """Write ``out_base``.cdg and ``out_base``.mp3 (the karaoke mix ``audio_path`` at 320 kbit/s), the pair
    karaoke players open together. The MP3 carries LAME's header with the encoder's delay, which ffmpeg and
    libmpg123 (VLC, most players) remove, so its first sample is the song's first, in step with the CD+G's first
    packet. Both are written to temporary files first: neither is left half-written."""
    info = probe(audio_path)
    if info.sample_rate not in MP3_RATES or info.channels > 2:
        raise AudioError(
            f'"{info.path.name}" is {info.sample_rate} Hz with {info.channels} channels; the MP3 beside a CD+G is '
            "written at 32, 44.1 or 48 kHz in mono or stereo. Render the karaoke mix that way and try again."
        )
    base = Path(out_base)
    cdg, mp3 = base.with_name(base.name + ".cdg"), base.with_name(base.name + ".mp3")
    with atomic_path(cdg) as temp:
        with open(temp, "wb") as handle:
            _write_packets(handle, lyrics, info.seconds, title, artist)
            handle.flush()
            os.fsync(handle.fileno())
        with AtomicAudioWriter.for_format(mp3, info.sample_rate, info.channels, OutputFormat.parse("mp3")) as writer:
            for block in iter_blocks(info):
                writer.write_float(block)
            writer.commit()
    return cdg, mp3
