"""Walking the chunks of a RIFF WAV file, for what libsndfile does not tell: the frame count a header declares, and
the certificate StemDesk embeds in a LIST/INFO chunk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO


def is_wav(head: bytes) -> bool:
    """Whether a file's first 12 bytes are a RIFF WAV header."""
    return len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def chunks(handle: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """The chunks of the RIFF WAV ``handle`` is open on (at its start): (id, size), with the file at the chunk's
    body; whatever of a body the caller does not read is skipped. Nothing when it is not a RIFF WAV; the walk ends
    at the first incomplete chunk header."""
    if not is_wav(handle.read(12)):
        return
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return
        size = int.from_bytes(header[4:], "little")
        body = handle.tell()
        yield header[:4], size
        handle.seek(body + size + (size & 1))
