"""The null-sum certificate every export carries: what went in, what made it, and whether the stems null.

It is written beside the exported files as ``stemdesk-certificate.json`` (read back with
`stemdesk.io.stems.read_certificate`) and, in WAV files, inside a LIST/INFO chunk
(ICMT = the certificate as JSON, ISFT = the software) that DAWs and tag editors show as the comment.
"""

from __future__ import annotations

import datetime
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.version import __version__
from ..io import riff
from ..io.atomic import atomic_write_bytes
from ..io.model_store import sha256_file
from ..io.stems import CERTIFICATE, MAX_CERTIFICATE_BYTES

CERTIFICATE_VERSION = 1
SOFTWARE = f"StemDesk {__version__}"


def build(
    kind: str,
    source: Path | None,
    settings: dict[str, Any],
    model: Any = None,
    null: dict | None = None,
    source_sha256: str | None = None,
    decoded_by: str | None = None,
) -> dict:
    """kind: "stems", "remix", "instrumental" ...; model: a ModelCard or an EnsembleCard (which names its members),
    or None for a remix of existing stems. ``decoded_by`` names what decoded the source when libsndfile did not
    ("ffmpeg 5.1.9": an M4A, a video's sound track): the null was measured against that decoder's samples."""
    cert: dict[str, Any] = {
        "stemdesk_certificate": CERTIFICATE_VERSION,
        "kind": kind,
        "software": SOFTWARE,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings,
    }
    if source is not None:
        cert["source"] = {"file": Path(source).name, "sha256": source_sha256 or sha256_file(Path(source))}
        if decoded_by:
            cert["source"]["decoded_by"] = decoded_by
    if model is not None:
        cert["model"] = model.identity()
    if null is not None:
        cert["null"] = null
    return cert


def embed_wav(path: Path, cert: dict) -> bool:
    """Append a LIST/INFO chunk holding the certificate to a finished RIFF WAV. False for other formats.

    The embedded copy leaves out the creation time, so the same input and settings give byte-identical files."""
    cert = {key: value for key, value in cert.items() if key != "created"}
    with open(path, "r+b") as handle:
        if not riff.is_wav(handle.read(12)):
            return False
        handle.seek(0, 2)
        end = handle.tell()
        text = json.dumps(cert, separators=(",", ":")).encode("utf-8")
        body = b"INFO"
        for key, value in ((b"ISFT", SOFTWARE.encode()), (b"ICMT", text)):
            value += b"\0"
            body += key + struct.pack("<I", len(value)) + value + (b"\0" if len(value) % 2 else b"")
        chunk = (b"\0" if end % 2 else b"") + b"LIST" + struct.pack("<I", len(body)) + body
        if end + len(chunk) - 8 >= 1 << 32:
            return False
        handle.write(chunk)
        handle.seek(4)
        handle.write(struct.pack("<I", end + len(chunk) - 8))
    return True


def read_embedded(path: Path) -> dict | None:
    """The certificate inside a WAV's LIST/INFO chunk, or None."""
    with open(path, "rb") as handle:
        for key, size in riff.chunks(handle):
            if key != b"LIST" or size > MAX_CERTIFICATE_BYTES + 64:
                continue
            body = handle.read(size)
            offset = 4 if body[:4] == b"INFO" else len(body)
            while offset + 8 <= len(body):
                sub, length = body[offset : offset + 4], struct.unpack("<I", body[offset + 4 : offset + 8])[0]
                if sub == b"ICMT":
                    try:
                        return json.loads(body[offset + 8 : offset + 8 + length].rstrip(b"\0"))
                    except ValueError:
                        return None
                offset += 8 + length + (length % 2)
        return None


def write_beside(
    folder: Path, cert: dict, outputs: Sequence[Path], name: str = CERTIFICATE, known: dict[str, str] | None = None
) -> Path:
    """The JSON certificate in ``folder`` (as ``name``), listing each output with its sha256 (after embedding);
    ``known``: file name → sha256 this process found for an output it wrote and has not changed since."""
    known = known or {}
    full = {
        **cert,
        "outputs": [{"file": Path(p).name, "sha256": known.get(Path(p).name) or sha256_file(Path(p))} for p in outputs],
    }
    return atomic_write_bytes(Path(folder) / name, (json.dumps(full, indent=2) + "\n").encode("utf-8"))
