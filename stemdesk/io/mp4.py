"""Adding a box of our own to an MP4 file's movie user data (moov/udta), as NI Stem files need for their ``stem`` box.

An MP4 file is a list of boxes: a 32-bit big-endian size (1: a 64-bit size follows the type; 0: to the end of the
file), a four-character type, the body. Container boxes hold boxes. Audio sits in ``mdat``, and each track's chunk
offset table (``stco``, or ``co64`` for 64-bit offsets) gives absolute file positions into it. So when ``moov`` grows
and ``mdat`` follows it, every offset past ``moov`` moves by as much, and the tables are rewritten to match.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import AudioError
from .atomic import atomic_path

# The containers between moov and the chunk offset tables.
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
COPY_BLOCK = 1 << 20


def box(kind: bytes, body: bytes) -> bytes:
    """One box: size, type, body."""
    if len(kind) != 4:
        raise ValueError(f"a box type has four characters, not {kind!r}")
    return struct.pack(">I", 8 + len(body)) + kind + body


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, body start, box end) of each box in ``data[start:end]``."""
    end = len(data) if end is None else end
    position = start
    while position < end:
        if end - position < 8:
            raise ValueError("a box header runs past its container")
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        body = position + 8
        if size == 1:
            size = struct.unpack(">Q", data[body : body + 8])[0]
            body += 8
        elif size == 0:
            size = end - position
        if size < body - position or position + size > end:
            raise ValueError(f"the {kind!r} box at byte {position} runs past its container")
        yield kind, position, body, position + size
        position += size


def _top_level(path: Path) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each top-level box, read from the headers only (mdat may be gigabytes)."""
    found = []
    size_of_file = path.stat().st_size
    with open(path, "rb") as handle:
        position = 0
        while position < size_of_file:
            handle.seek(position)
            header = handle.read(16)
            if len(header) < 8:
                raise ValueError(f"a box header at byte {position} is cut short")
            size, kind = struct.unpack(">I4s", header[:8])
            if size == 1:
                if len(header) < 16:
                    raise ValueError(f"a box header at byte {position} is cut short")
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:
                size = size_of_file - position
            if size < 8 or position + size > size_of_file:
                raise ValueError(f"the {kind!r} box at byte {position} runs past the end of the file")
            found.append((kind, position, position + size))
            position += size
    return found


def _shift_chunk_offsets(moov: bytearray, after: int, by: int) -> None:
    """Add ``by`` to every chunk offset in ``moov`` (a whole moov box) that points at or past file position
    ``after``."""

    def visit(start: int, end: int) -> None:
        for kind, _, body, stop in _boxes(bytes(moov[start:end])):
            body, stop = start + body, start + stop
            if kind in _CONTAINERS:
                visit(body, stop)
            elif kind in (b"stco", b"co64"):
                wide = kind == b"co64"
                (count,) = struct.unpack(">I", moov[body + 4 : body + 8])
                width, code = (8, ">Q") if wide else (4, ">I")
                for i in range(count):
                    at = body + 8 + i * width
                    (offset,) = struct.unpack(code, moov[at : at + width])
                    if offset >= after:
                        if not wide and offset + by >= 1 << 32:
                            raise ValueError("a 32-bit chunk offset would overflow")
                        moov[at : at + width] = struct.pack(code, offset + by)

    _, _, body, stop = next(_boxes(bytes(moov)))
    visit(body, stop)


def set_user_box(path: str | os.PathLike, kind: bytes, payload: bytes) -> None:
    """Put a ``kind`` box holding ``payload`` into moov/udta of the MP4 file at ``path`` (replacing one of that type;
    udta is made if there is none). Chunk offsets are kept right wherever moov lies. When moov is the last box the
    file is changed in place, so give it a file nobody reads yet (a temporary one)."""
    path = Path(path)
    try:
        top = _top_level(path)
        moovs = [(start, end) for k, start, end in top if k == b"moov"]
        if len(moovs) != 1:
            raise ValueError(f"{len(moovs)} moov boxes")
        start, end = moovs[0]
        with open(path, "rb") as handle:
            handle.seek(start)
            old = handle.read(end - start)
        _, _, body, stop = next(_boxes(old))
        children = list(_boxes(old, body, stop))
        user = [(s, b, e) for k, s, b, e in children if k == b"udta"]
        new_box = box(kind, payload)
        if user:
            s, b, e = user[0]
            kept = b"".join(old[cs:ce] for ck, cs, _, ce in _boxes(old, b, e) if ck != kind)
            moov_body = old[body:s] + box(b"udta", kept + new_box) + old[e:stop]
        else:
            moov_body = old[body:stop] + box(b"udta", new_box)
        moov = bytearray(box(b"moov", moov_body))
    except (ValueError, struct.error) as error:
        raise AudioError(f'"{path.name}" is not an MP4 file StemDesk can add its box to ({error}).') from None
    grown = len(moov) - len(old)
    last = end == top[-1][2]
    if not last:
        try:
            _shift_chunk_offsets(moov, end, grown)
        except ValueError as error:
            raise AudioError(f'Cannot add a box to "{path.name}": {error}.') from None
    if last:
        # the usual case (ffmpeg writes moov after mdat): nothing moves, so moov is rewritten in place
        with open(path, "r+b") as handle:
            handle.seek(start)
            handle.write(moov)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        return
    with atomic_path(path) as temp, open(path, "rb") as source, open(temp, "wb") as target:
        _copy(source, target, start)
        target.write(moov)
        source.seek(end)
        shutil.copyfileobj(source, target, COPY_BLOCK)
        target.flush()
        os.fsync(target.fileno())


def _copy(source, target, count: int) -> None:
    while count > 0:
        chunk = source.read(min(COPY_BLOCK, count))
        if not chunk:
            raise AudioError("The MP4 file ended while it was being copied.")
        target.write(chunk)
        count -= len(chunk)
