"""Downloading one large file as a transaction (STYLE.md, 21): bytes go to ``<file>.part`` beside a small record of
where they came from (``<file>.part.json``), a cut connection is resumed with an HTTP Range request, the size and
sha256 are checked before the file gets its name, and a file that fails its check is deleted.

The standard library's urllib does the HTTP: its default opener follows redirects (Hugging Face and GitHub send the
file from another host; the Range header goes along) and takes a proxy from the environment (``https_proxy``,
``http_proxy``, ``no_proxy``) as every urllib program does. No front end's words here: each error says what
happened and what to do, and carries the address (`DownloadError.url`) so a front end can say how to fetch the file
by hand.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.cancel import CancelToken
from ..core.errors import ModelError
from ..core.version import __version__

Progress = Callable[[str, float], None]  # (what is happening, fraction done 0..1)

CHUNK = 1 << 16
TIMEOUT_SECONDS = 30.0  # connecting, and waiting for the next bytes: a server silent this long has gone away
REPORT_SECONDS = 0.5  # progress at most this often
USER_AGENT = f"StemDesk/{__version__} (+urllib)"


class DownloadError(ModelError):
    """A file could not be downloaded or is not the file expected. ``url`` is its address, for the front end to
    say how to fetch it by hand (the setting "file"); ``offline`` is true when the server could not be reached;
    ``elsewhere`` is true when another address of the same file may do better (this one has no such file, refused
    it, could not be reached, or served other bytes), and false when trying again here resumes the download."""

    def __init__(self, message: str, url: str, offline: bool = False, elsewhere: bool = False):
        super().__init__(message, setting="file", value=url)
        self.url, self.offline, self.elsewhere = url, offline, elsewhere


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    sha256: str
    resumed_from: int  # bytes a partial file already held (0: a fresh download)
    url: str = ""  # where it came from


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _record_path(target: Path) -> Path:
    return target.with_name(target.name + ".part.json")


def discard_partial(target: Path) -> None:
    """Delete what an earlier download of ``target`` left (its ``.part`` and its record)."""
    part_path(target).unlink(missing_ok=True)
    _record_path(target).unlink(missing_ok=True)


def _read_record(target: Path) -> dict:
    try:
        record = json.loads(_record_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _megabytes(n: float) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 10e6 else f"{n / 1e6:,.1f} MB"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def _disk_full(target: Path, done: int, size: int | None) -> ModelError:
    need = f" {_megabytes(size)} are needed;" if size else ""
    return ModelError(
        f'The disk holding "{target.parent}" is full ({_megabytes(done)} downloaded).{need} free some space there '
        "and try again. The partial download was deleted, so nothing is left behind."
    )


def fetch(
    url: str,
    target: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    timeout: float = TIMEOUT_SECONDS,
    label: str | None = None,
) -> Fetched:
    """Download ``url`` to ``target`` (its folder is created), resuming a ``.part`` an earlier try left when it
    came from the same address. ``size``, ``sha256`` and ``sha256_prefix`` (Demucs names its files with the first 8
    hex digits of their sha256) are checked when given; a file that fails them is deleted and DownloadError raised.
    A cancel keeps the ``.part`` for the next try and raises Cancelled; a full disk deletes it."""
    report = progress or (lambda what, fraction: None)
    cancel = cancel or CancelToken()
    name = label or target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    part, record = part_path(target), _read_record(target)
    have = part.stat().st_size if part.is_file() else 0
    unverifiable = not (record.get("etag") or record.get("last_modified") or sha256 or sha256_prefix)
    if have and (record.get("url") != url or (size is not None and have > size) or unverifiable):
        # another file's bytes, more than the whole file, or bytes nothing could tell from a newer file's: the
        # server cannot check them (no ETag or date to send with If-Range) and no checksum will
        discard_partial(target)
        have, record = 0, {}
    for attempt in range(2):  # a second time from zero when the server refuses the range of a stale .part
        headers = {"User-Agent": USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
            etag = record.get("etag") or ""
            validator = etag if etag and not etag.startswith("W/") else record.get("last_modified")
            if validator:
                headers["If-Range"] = validator  # the server sends the whole file if it changed since
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416 and have and attempt == 0:
                if size is not None and have == size:  # everything was there already
                    return _finish(url, target, size, sha256, sha256_prefix, have, report, name)
                discard_partial(target)
                have, record = 0, {}
                continue
            raise _http_error(url, error.code, error.reason) from None
        except (urllib.error.URLError, OSError) as error:
            raise _unreachable(url, error) from None
        with response:
            status = response.status
            start = 0
            if status == 206:
                start = _range_start(response.headers.get("Content-Range"))
                if start != have:
                    raise DownloadError(
                        f"The server at {url} answered a resumed download from the wrong place (byte {start}, not "
                        f"{have}). Try again; if it persists, the partial file {part} can be deleted to start over.",
                        url,
                    )
            elif status != 200:
                raise _http_error(url, status, response.reason)
            length = response.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else None
            if size is not None and total is not None and total != size:
                discard_partial(target)
                raise DownloadError(
                    f"The server offers {name} with {total:,} bytes, not the {size:,} the catalog records: it is "
                    f"another file, or the publisher replaced it. Nothing was installed. {url}",
                    url,
                    elsewhere=True,
                )
            expected = size if size is not None else total
            _write_record(target, url, response.headers, expected)
            digest = hashlib.sha256()
            mode = "ab" if start else "wb"
            if start:
                with open(part, "rb") as earlier:
                    for block in iter(lambda: earlier.read(1 << 20), b""):
                        digest.update(block)
            done = start
            began, last = time.monotonic(), 0.0
            try:
                with open(part, mode) as out:
                    if not start:
                        out.truncate(0)
                    while True:
                        cancel.raise_if_cancelled()
                        try:
                            block = response.read1(CHUNK)
                        except TimeoutError:
                            raise DownloadError(
                                f"The server at {url} sent nothing for {timeout:.0f} s ({_megabytes(done)} "
                                "downloaded). Try again: the download resumes where it stopped.",
                                url,
                                offline=True,
                            ) from None
                        except (OSError, ValueError) as error:  # http.client raises IncompleteRead (a ValueError)
                            raise DownloadError(
                                f"The connection to {url} broke after {_megabytes(done)} ({error.__class__.__name__}"
                                "). Try again: the download resumes where it stopped.",
                                url,
                                offline=True,
                            ) from None
                        if not block:
                            break
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        now = time.monotonic()
                        if now - last >= REPORT_SECONDS:
                            last = now
                            report(_progress_text(name, done, expected, start, now - began), _fraction(done, expected))
            except OSError as error:
                if error.errno in (errno.ENOSPC, errno.EDQUOT):
                    discard_partial(target)
                    raise _disk_full(target, done, expected) from None
                raise DownloadError(
                    f'Could not write "{part}" ({error.strerror or error}). Check the folder\'s permissions and '
                    "try again.",
                    url,
                ) from None
            if expected is not None and done < expected:
                raise DownloadError(
                    f"The connection to {url} ended after {_megabytes(done)} of {_megabytes(expected)}. Try again: "
                    "the download resumes where it stopped.",
                    url,
                    offline=True,
                )
            return _finish(url, target, expected, sha256, sha256_prefix, start, report, name, digest.hexdigest())
    raise AssertionError("unreachable")


def _finish(
    url: str,
    target: Path,
    size: int | None,
    sha256: str | None,
    sha256_prefix: str | None,
    resumed_from: int,
    report: Progress,
    name: str,
    digest: str | None = None,
) -> Fetched:
    """Check the complete ``.part`` and give it its name; a file that fails is deleted."""
    part = part_path(target)
    actual_size = part.stat().st_size
    if digest is None:
        digest = sha256_of(part)
    problem = check(name, actual_size, digest, size, sha256, sha256_prefix)
    if problem:
        discard_partial(target)
        raise DownloadError(
            f"{problem} The download was deleted and nothing was installed; try again. ({url})", url, elsewhere=True
        )
    os.replace(part, target)
    _record_path(target).unlink(missing_ok=True)
    report(f"{name}: {_megabytes(actual_size)} downloaded and checked", 1.0)
    return Fetched(target, actual_size, digest, resumed_from, url)


def check(
    name: str, actual_size: int, digest: str, size: int | None, sha256: str | None, sha256_prefix: str | None
) -> str | None:
    """What is wrong with a file of ``actual_size`` bytes and sha256 ``digest`` against what is expected, or None."""
    if size is not None and actual_size != size:
        return f"{name} has {actual_size:,} bytes, not the {size:,} expected: it is incomplete or another file."
    if sha256 and digest != sha256.lower():
        return f"{name} has sha256 {digest[:12]}…, not {sha256[:12]}…: it is damaged or another file."
    if sha256_prefix and not digest.startswith(sha256_prefix.lower()):
        return (
            f"{name}'s sha256 starts {digest[: len(sha256_prefix)]}, not {sha256_prefix} (the publisher's checksum "
            "in its name): it is damaged or another file."
        )
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_record(target: Path, url: str, headers, size: int | None) -> None:
    record = {"url": url, "etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified"), "size": size}
    try:
        _record_path(target).write_text(json.dumps(record), encoding="utf-8")
    except OSError:
        pass  # without it a later try starts from zero: slower, not wrong


def _range_start(content_range: str | None) -> int:
    """ "bytes 100-999/1000" → 100; anything else → -1."""
    try:
        unit, _, rest = (content_range or "").partition(" ")
        return int(rest.split("-", 1)[0]) if unit == "bytes" else -1
    except ValueError:
        return -1


def _fraction(done: int, total: int | None) -> float:
    return min(1.0, done / total) if total else 0.0


def _progress_text(name: str, done: int, total: int | None, start: int, elapsed: float) -> str:
    rate = (done - start) / elapsed if elapsed > 0 else 0.0
    text = f"{name}: {_megabytes(done)}" + (f" of {_megabytes(total)}" if total else "")
    if rate > 0:
        text += f", {rate / 1e6:.1f} MB/s"
        if total:
            text += f", {_duration((total - done) / rate)} left"
    return text


def _http_error(url: str, code: int, reason: object) -> DownloadError:
    if code == 404:
        return DownloadError(
            f"The server has no file at {url} (HTTP 404): the publisher may have moved or removed it. Nothing was "
            "installed. If you have the file from elsewhere, install it from that file.",
            url,
            elsewhere=True,
        )
    if code in (401, 403):
        return DownloadError(
            f"The server refused {url} (HTTP {code} {reason}). Nothing was installed; try again later or fetch the "
            "file in a web browser.",
            url,
            elsewhere=True,
        )
    return DownloadError(
        f"The server answered HTTP {code} ({reason}) for {url}. Nothing was installed; try again later.",
        url,
        elsewhere=True,
    )


def _unreachable(url: str, error: BaseException) -> DownloadError:
    reason = getattr(error, "reason", error)
    host = urllib.parse.urlparse(url).hostname or url
    return DownloadError(
        f"Could not reach {host} ({reason}): no connection, or a proxy is needed (StemDesk uses https_proxy from "
        "the environment). Nothing was installed.",
        url,
        offline=True,
        elsewhere=True,
    )
