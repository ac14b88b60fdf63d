"""Unlabelled real music from Debian's archive, labelled by a teacher model (HTDemucs) for distillation.

    .venv/bin/python -m stemdesk.training.corpus fetch  [--cache DIR] [--packages a,b]   download and unpack the packages
    .venv/bin/python -m stemdesk.training.corpus label  [--cache DIR] [--model htdemucs] [--packages a,b] [--workers N]
                                                         [--windows N]                 label what is not labelled yet
    .venv/bin/python -m stemdesk.training.corpus status [--cache DIR]                     minutes fetched and labelled
    .venv/bin/python -m stemdesk.training.corpus rebuild [--cache DIR]                    delete the cache and start again

Everything lives in a cache outside the repository (default ``~/.cache/stemdesk/corpus``), never in git:
``debs/`` the packages as `apt-get download` fetched them, ``audio/<package>/`` their unpacked music,
``manifest.jsonl`` one line per song (path, package, version, licence, sha256, seconds), and
``labels/<teacher id>-<weights sha256[:16]>/`` the teacher's stems, written by ``stemdesk batch`` (the same code as
``stemdesk separate``: resumable, a song at a time, each song's stems complete or absent, a record per song in
``stemdesk-batch.jsonl`` with the input's and the weights' sha256). Killing it at any moment loses at most the song
in progress; running ``label`` again carries on. The labels are the teacher's stems made to null against the
decoded song, 16-bit FLAC, so the sum of a song's label stems is the song as the teacher heard it, exactly.

``decoded/<key>.npy`` holds the labels decoded for training (int16, at the training rate): written the first time
a run loads them, then memory-mapped, so runs load them in seconds and the operating system, not the run, holds
them (see `_decoded`). Deleting ``decoded/`` only makes the next load slower.

``label --windows N`` labels N 20-second windows of each song instead of the whole song (training takes a few
windows per song, `Teacher.windows`, so the rest of a whole song's labels are never used): the loud windows spread
over the song, chosen as `load_labelled` chooses them from a whole song, cut first into
``excerpts/<song path>/<start>s/song.flac`` (24-bit FLAC; a Frets on Fire song's guitar.flac beside it, and
``windows.json`` saying which song and where) and labelled like songs. A song already labelled whole is not cut;
labelling N windows of 20 s costs the teacher N × 20 s of audio, not the song's length.

Licences: each package's /usr/share/doc/<package>/copyright, kept beside its audio and summarised in the manifest.
The labels derive from HTDemucs weights released for personal and research use only; so do models trained on them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stemdesk.core.device import DEVICES
from stemdesk.core.errors import AudioError, StemDeskError
from stemdesk.core.resample import resample
from stemdesk.io.atomic import atomic_folder, atomic_path, atomic_write_bytes
from stemdesk.io.audio import probe, read, write
from stemdesk.io.formats import OutputFormat
from stemdesk.io.model_store import find_model, sha256_file
from stemdesk.io.process import die_with_parent, interrupt

from .data import Sampler, Song
from .dataset import SOURCES, SongFiles, read_song

# Debian packages of real music (minutes measured when unpacked; licence as their copyright files state it).
PACKAGES = {
    "fretsonfire-songs-muldjord": "CC BY-SA 3.0 (songs with vocals; guitar.ogg is a separate guitar track)",
    "fretsonfire-songs-sectoid": "CC BY-SA 3.0 / MIT-style (guitar.ogg is a separate guitar track)",
    "warzone2100-music": "GPL-2+",
    "singularity-music": "CC BY-SA 3.0",
    "nexuiz-music": "GPL-2+",
    "planetblupi-music-ogg": "GPL-3+ / Expat",
    "drascula-music": "see the package's copyright file (free, Debian main)",
    "hyperrogue-music": "see the package's copyright file (free, Debian main)",
    "asc-music": "see the package's copyright file (free, Debian main)",
    "ufoai-music": "CC-BY / CC-BY-SA / GPL / public domain, per track",
}
AUDIO = (".ogg", ".opus", ".flac", ".wav", ".mp3")
MIN_SECONDS = 20.0


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stemdesk" / "corpus"


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {(done.stderr or done.stdout).strip()[-400:]}")


def fetch(cache: Path, packages: list[str]) -> None:
    """apt-get download each package (once), unpack its music into audio/<package>/, and (re)write the manifest."""
    debs, audio = cache / "debs", cache / "audio"
    debs.mkdir(parents=True, exist_ok=True)
    for package in packages:
        target = audio / package
        if (target / ".complete").is_file():
            continue
        if not list(debs.glob(f"{package}_*.deb")):
            print(f"downloading {package}", flush=True)
            _run(["apt-get", "download", package], debs)
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        with atomic_folder(target) as staging:
            unpacked = staging / "root"
            unpacked.mkdir(parents=True)
            _run(["dpkg-deb", "-x", str(deb), str(unpacked)], cache)
            music = staging / "music"
            music.mkdir()
            for path in sorted(unpacked.rglob("*")):
                if path.suffix.lower() in AUDIO and path.is_file():
                    relative = path.relative_to(unpacked)
                    (music / relative).parent.mkdir(parents=True, exist_ok=True)
                    path.rename(music / relative)
                elif path.suffix.lower() == ".pk3" and zipfile.is_zipfile(path):  # ufoai's music is a zip
                    with zipfile.ZipFile(path) as archive:
                        for name in archive.namelist():
                            if name.lower().endswith(AUDIO) and ".." not in Path(name).parts:
                                out = music / path.name / name
                                out.parent.mkdir(parents=True, exist_ok=True)
                                out.write_bytes(archive.read(name))
            copyright_file = next(unpacked.glob(f"usr/share/doc/{package}/copyright"), None)
            if copyright_file is not None:
                shutil.copy(copyright_file, staging / "copyright")
            shutil.rmtree(unpacked)
            (staging / ".complete").write_text(deb.name + "\n")
    write_manifest(cache)


def write_manifest(cache: Path) -> list[dict]:
    previous = {}
    manifest = cache / "manifest.jsonl"
    if manifest.is_file():
        for line in manifest.read_text().splitlines():
            row = json.loads(line)
            previous[row["path"]] = row
    rows = []
    for package_dir in sorted((cache / "audio").iterdir()):
        if not (package_dir / ".complete").is_file():
            continue
        deb = (package_dir / ".complete").read_text().strip()
        for path in sorted((package_dir / "music").rglob("*")):
            if path.suffix.lower() not in AUDIO:
                continue
            relative = str(path.relative_to(cache))
            row = previous.get(relative)
            if row is None:
                try:
                    seconds = probe(path).seconds
                except AudioError as error:
                    print(f"skipped {relative}: {error}", flush=True)
                    continue
                row = {
                    "path": relative,
                    "package": package_dir.name,
                    "deb": deb,
                    "licence": PACKAGES.get(package_dir.name, "see copyright"),
                    "copyright": str((package_dir / "copyright").relative_to(cache)),
                    "sha256": sha256_file(path),
                    "seconds": round(seconds, 2),
                }
            if row["seconds"] >= MIN_SECONDS:
                rows.append(row)
    atomic_write_bytes(manifest, "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8"))
    return rows


def labels_dir(cache: Path, model: str) -> Path:
    card = find_model(model)
    return cache / "labels" / f"{card.id}-{card.weights_sha256[:16]}"


def to_label(cache: Path, packages: Sequence[str] | None = None) -> list[dict]:
    """The manifest's songs the teacher labels: those of ``packages`` (None: all), without the Frets on Fire
    guitar.ogg beside a song.ogg (`load_labelled` adds that real guitar to the teacher's "other" of its song, so
    labelling it too would only spend the teacher's time)."""
    manifest = cache / "manifest.jsonl"
    if not manifest.is_file():
        raise SystemExit(f"No manifest in {cache}: run `python -m stemdesk.training.corpus fetch` first.")
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    unknown = sorted(set(packages or ()) - {row["package"] for row in rows})
    if unknown:
        raise SystemExit(f"Not fetched yet: {', '.join(unknown)}. Run `python -m stemdesk.training.corpus fetch`.")
    return [
        row
        for row in rows
        if (packages is None or row["package"] in packages) and _partner_of_song(cache / row["path"]) is None
    ]


def label(
    cache: Path,
    model: str,
    threads: int,
    packages: Sequence[str] | None = None,
    workers: int = 1,
    windows: int = 0,
    device: str = "auto",
) -> int:
    """Label the songs of `to_label` not labelled yet, through `stemdesk batch` (resumable): ``workers``
    processes of ``threads`` threads each, the teacher on ``device`` (auto: a GPU when there is one).
    ``windows``: label that many 20-second windows of each song not labelled whole (`cut_windows`) instead of
    whole songs (0)."""
    rows = to_label(cache, packages)
    paths = [row["path"] for row in rows]
    if windows:
        whole = _done(cache, model)
        excerpts = cut_windows(cache, [row for row in rows if row["sha256"] not in whole], windows)
        paths = [excerpt["path"] for excerpt in excerpts]
    # beside the manifest, so that the songs' relative paths (and so the labels' folders) are the manifest's
    listing = cache / "to-label.jsonl"
    atomic_write_bytes(listing, "".join(json.dumps({"path": path}) + "\n" for path in paths).encode("utf-8"))
    out = labels_dir(cache, model)
    command = [
        sys.executable,
        "-m",
        "stemdesk",
        "batch",
        str(listing),
        "-o",
        str(out),
        "--model",
        model,
        "--format",
        "flac",
        "--bit-depth",
        "16",
        "--workers",
        str(workers),
        "--threads-per-worker",
        str(threads),
        "--device",
        device,
    ]
    print(" ".join(command), flush=True)
    return _call(command)


def _call(command: list[str]) -> int:
    """Run ``command`` to its end, and stop it when this process is stopped: SIGTERM or Ctrl-C here is passed on
    (the batch then ends its song in progress and leaves no temporary stems), and on Linux the command gets SIGTERM
    when this process dies outright (kill -9), instead of labelling on for nobody (found as an orphan batch)."""
    parent = os.getpid()
    linux = sys.platform.startswith("linux")
    child = subprocess.Popen(command, preexec_fn=(lambda: die_with_parent(parent)) if linux else None)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        child.wait()
        raise


def status(cache: Path, model: str) -> dict:
    """Minutes to label and labelled, in all and per package (a song's separate guitar track is not counted: it is
    not labelled on its own): songs labelled whole, and the minutes of songs' windows labelled (``--windows``)."""
    rows = to_label(cache) if (cache / "manifest.jsonl").is_file() else []
    done = _done(cache, model)
    windows: dict[str, float] = {}  # song sha256 -> seconds of its windows labelled
    for excerpt in excerpt_rows(cache):
        if excerpt["sha256"] in done:
            windows[excerpt["song_sha256"]] = windows.get(excerpt["song_sha256"], 0.0) + excerpt["seconds"]
    by_package: dict[str, list[float]] = {}
    for row in rows:
        entry = by_package.setdefault(row["package"], [0.0, 0.0, 0.0, 0.0])
        entry[0] += row["seconds"] / 60
        entry[1] += row["seconds"] / 60 if row["sha256"] in done else 0.0
        if row["sha256"] not in done and row["sha256"] in windows:
            entry[2] += 1
            entry[3] += windows[row["sha256"]] / 60
    return {
        "songs": len(rows),
        "minutes": round(sum(r["seconds"] for r in rows) / 60, 1),
        "labelled_minutes": round(sum(v[1] for v in by_package.values()), 1),
        "songs_with_windows_labelled": int(sum(v[2] for v in by_package.values())),
        "window_minutes_labelled": round(sum(v[3] for v in by_package.values()), 1),
        "packages": {
            k: {"minutes": round(v[0], 1), "labelled": round(v[1], 1), "window_minutes_labelled": round(v[3], 1)}
            for k, v in by_package.items()
        },
    }


def _done(cache: Path, model: str) -> set[str]:
    """The sha256 of every input the teacher has finished labelling (a whole song or a window of one)."""
    done: set[str] = set()
    records = labels_dir(cache, model) / "stemdesk-batch.jsonl"
    if records.is_file():
        for line in records.read_text().splitlines():
            record = json.loads(line)
            if record.get("status") == "done":
                done.add(record.get("input_sha256", ""))
    return done


# A teacher's stem this faint against the window's mix is mostly what it was unsure of: bleed of the other
# instruments (game music's "vocals" at -30 dB), not a part. Fainter is silence (a fine target); louder is a part.
FAINT_DB = (-35.0, -18.0)
WINDOW_SECONDS = 20.0
SILENT_DBFS = -45.0

EXCERPTS = "excerpts"


def _window_energies(mix: np.ndarray, window: int) -> list[float]:
    """Mean square of each whole ``window``-sample window of a (channels, n) mix."""
    return [
        float(np.mean(np.square(mix[:, i * window : (i + 1) * window], dtype=np.float64)))
        for i in range(mix.shape[-1] // window)
    ]


def _spread(loud: Sequence[int], take: int) -> list[int]:
    """``take`` of the loud windows, spread over the song; all of them when there are fewer (spreading the asked
    number over fewer windows picked some twice and lost the others)."""
    take = min(take, len(loud))
    return sorted({loud[round(k * (len(loud) - 1) / max(take - 1, 1))] for k in range(take)})


def _loud(energies: Sequence[float]) -> list[int]:
    return [i for i, energy in enumerate(energies) if 10 * math.log10(energy + 1e-20) > SILENT_DBFS]


def cut_windows(cache: Path, rows: Sequence[dict], per_song: int) -> list[dict]:
    """Cut up to ``per_song`` 20-second windows of each song of ``rows`` (manifest rows) for labelling: the loud
    windows spread over the song, as `load_labelled` takes them from a whole song's labels. Each song's windows go
    to ``excerpts/<song path>/<start>s/song.flac`` (24-bit FLAC at the song's rate; a Frets on Fire song's real
    guitar is cut beside it as guitar.flac), with ``windows.json`` naming the song; a song is cut once per number of
    windows, its folder written whole or not at all. Returns every window's row (`excerpt_rows`) of these songs."""
    if per_song < 1:
        raise StemDeskError(f"Cut at least one window per song, not {per_song}.")
    for row in rows:
        song = cache / row["path"]
        folder = cache / EXCERPTS / Path(row["path"]).with_suffix("")
        described = folder / "windows.json"
        if described.is_file():
            known = json.loads(described.read_text())
            if known.get("song_sha256") == row["sha256"] and known.get("per_song") == per_song:
                continue
        try:
            audio, rate = read(song)
            guitar_path = _partner(song)
            guitar = read(guitar_path)[0] if guitar_path is not None else None
        except (AudioError, OSError) as error:
            print(f"skipped {row['path']}: {error}", flush=True)
            continue
        window = int(WINDOW_SECONDS * rate)
        if guitar is not None:
            guitar = _fit(guitar, audio.shape)
        starts = _spread(_loud(_window_energies(audio if guitar is None else audio + guitar, window)), per_song)
        windows = []
        with atomic_folder(folder) as staging:
            for i in starts:
                parts = {"song": audio[:, i * window : (i + 1) * window]}
                if guitar is not None:
                    parts["guitar"] = guitar[:, i * window : (i + 1) * window]
                # 24-bit FLAC clips above full scale: scale a window that peaks over it (its labels sum to the
                # window as written, so the targets stay exact)
                peak = max(float(np.abs(part).max()) for part in parts.values())
                scale = 0.999 / peak if peak > 0.999 else 1.0
                name = f"{i * WINDOW_SECONDS:.0f}s"
                for stem, part in parts.items():
                    write(staging / name / f"{stem}.flac", part * scale, rate, OutputFormat.parse("flac", "24"))
                path = Path(EXCERPTS) / Path(row["path"]).with_suffix("") / name / "song.flac"
                windows.append(
                    {
                        "path": str(path),
                        "start": i * WINDOW_SECONDS,
                        "sha256": sha256_file(staging / name / "song.flac"),
                    }
                )
            meta = {
                "song": row["path"],
                "song_sha256": row["sha256"],
                "package": row["package"],
                "licence": row.get("licence", ""),
                "per_song": per_song,
                "seconds": WINDOW_SECONDS,
                "windows": windows,
            }
            (staging / "windows.json").write_text(json.dumps(meta, indent=1) + "\n")
    wanted = {row["sha256"] for row in rows}
    return [excerpt for excerpt in excerpt_rows(cache) if excerpt["song_sha256"] in wanted]


def _fit(audio: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``audio`` as ``shape`` (channels, n): a mono part spread over the channels, cut or padded with silence."""
    channels, length = shape
    if audio.shape[0] != channels:
        audio = np.repeat(audio[:1], channels, axis=0)
    if audio.shape[1] < length:
        audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
    return audio[:, :length]


def excerpt_rows(cache: Path) -> list[dict]:
    """Every window cut by `cut_windows` in ``cache``: its path (relative to the cache), sha256, start and length
    in seconds, and its song's path, sha256, package and licence."""
    rows = []
    root = cache / EXCERPTS
    if not root.is_dir():
        return rows
    for described in sorted(root.rglob("windows.json")):
        meta = json.loads(described.read_text())
        for window in meta["windows"]:
            rows.append(
                {
                    **window,
                    "seconds": meta["seconds"],
                    "song": meta["song"],
                    "song_sha256": meta["song_sha256"],
                    "package": meta["package"],
                    "licence": meta["licence"],
                }
            )
    return rows


@dataclass
class Labelled:
    """The teacher-labelled corpus as training windows, and what was kept and dropped, for the model card."""

    songs: list[Song]
    seconds: float = 0.0
    windows: int = 0
    silent_windows: int = 0
    faint: dict[str, int] = field(default_factory=dict)  # windows where a source's label was dropped as unsure
    packages: dict[str, dict] = field(default_factory=dict)  # package -> {"licence", "songs", "seconds"}
    real_guitar_songs: int = 0
    targets: list[str] = field(default_factory=list)  # the sources whose labels are used as targets
    song_sha256: list[str] = field(default_factory=list)  # the labelled songs the windows come from

    def summary(self) -> dict:
        return {
            "windows": self.windows,
            "minutes": round(self.seconds / 60, 1),
            "window_seconds": WINDOW_SECONDS,
            "silent_windows_skipped": self.silent_windows,
            "unsure_labels_dropped": self.faint,
            "unsure_rule": f"a teacher stem between {FAINT_DB[0]:.0f} and {FAINT_DB[1]:.0f} dB of its window's mix "
            "is not a target in that window (mostly bleed); fainter counts as silence, louder as the part",
            "songs_with_a_real_guitar_track": self.real_guitar_songs,
            "targets": self.targets,
            "packages": self.packages,
        }


def _beside(path: Path, is_stem: str, other_stem: str) -> Path | None:
    """The audio file named ``other_stem`` in ``path``'s folder, when ``path`` is named ``is_stem``."""
    if path.stem != is_stem or not path.parent.is_dir():
        return None
    return next((p for p in path.parent.iterdir() if p.stem == other_stem and p.suffix.lower() in AUDIO), None)


def _partner_of_song(path: Path) -> Path | None:
    """The song.ogg a Frets on Fire guitar.ogg is played with, if ``path`` is such a guitar track."""
    return _beside(path, "guitar", "song")


def _partner(song: Path) -> Path | None:
    """Frets on Fire songs come as song.ogg plus a separate guitar.ogg: the real guitar, played with the song."""
    return _beside(song, "song", "guitar")


def load_labelled(
    cache: Path,
    model: str = "htdemucs",
    rate: int = 44100,
    windows_per_song: int = 6,
    budget_seconds: float | None = None,
    sources: tuple[str, ...] = SOURCES,
    targets: tuple[str, ...] | None = None,
    songs: Collection[str] | None = None,
) -> Labelled:
    """The labelled songs (only those whose sha256 is in ``songs``, when given: all of them must be labelled) as
    20-second training windows at ``rate``: up to ``windows_per_song`` spread over each
    song (silent windows skipped), each a `Song` whose unsure sources (see FAINT_DB) are not usable. A song labelled
    whole gives its windows from its labels; a song whose windows were labelled (``label --windows``) gives those
    (spread, up to ``windows_per_song``); a song labelled both ways, its whole labels. A Frets on Fire
    song is its song.ogg plus its real guitar.ogg, the guitar added to the teacher's "other" (guitar.ogg alone is
    skipped). Stems still sum to the window's mix exactly (the labels null against the decoded song). ``targets``: the
    only sources whose labels are targets (the others stay in the mix, unused), e.g. where the teacher is strong."""
    out = labels_dir(cache, model)
    rows = {}
    if (cache / "manifest.jsonl").is_file():
        for line in (cache / "manifest.jsonl").read_text().splitlines():
            row = json.loads(line)
            rows[row["sha256"]] = row
    excerpts = {excerpt["sha256"]: excerpt for excerpt in excerpt_rows(cache)}
    whole: dict[str, dict] = {}  # song sha256 -> its labelling record
    parts: dict[str, list[tuple[dict, dict]]] = {}  # song sha256 -> its windows' (record, excerpt)
    if (out / "stemdesk-batch.jsonl").is_file():
        for line in (out / "stemdesk-batch.jsonl").read_text().splitlines():
            record = json.loads(line)
            if record.get("status") != "done":
                continue
            sha = record.get("input_sha256")
            if sha in rows:
                whole[sha] = record
            elif sha in excerpts and excerpts[sha]["song_sha256"] in rows:
                found = parts.setdefault(excerpts[sha]["song_sha256"], [])
                if all(e["sha256"] != sha for _, e in found):
                    found.append((record, excerpts[sha]))
    labelled_songs = set(whole) | set(parts)
    if songs is not None:
        missing = set(songs) - labelled_songs
        if missing:
            packages = sorted({rows[sha]["package"] for sha in missing if sha in rows})
            raise StemDeskError(
                f"{len(missing)} of the {len(songs)} songs asked for are not labelled by {model} in {cache}"
                + (
                    f": run `python -m stemdesk.training.corpus label --model {model} --packages {','.join(packages)}`."
                    if packages
                    else ", nor fetched: run `python -m stemdesk.training.corpus fetch` and `label`."
                )
            )
        labelled_songs &= set(songs)
    result = Labelled([], targets=list(targets or sources))
    window = int(WINDOW_SECONDS * rate)
    # in the order of the songs' paths (the order a run's windows, and so its sampler, depend on)
    for sha in sorted(labelled_songs, key=lambda sha: str(Path(rows[sha]["path"]).with_suffix(""))):
        row = rows[sha]
        source_path = cache / row["path"]
        if _partner_of_song(source_path) is not None:
            continue
        if sha in whole:
            pieces = [(out / whole[sha]["relative"], source_path, None, whole[sha])]
        else:
            by_start = sorted(parts[sha], key=lambda pair: pair[1]["start"])
            pieces = [
                (out / record["relative"], cache / excerpt["path"], excerpt["start"], record)
                for record, excerpt in by_start
            ]
        decoded_windows = []  # (start in seconds, the window's int16 stems at ``rate``, a view of a decoded file)
        real_guitar = False
        for folder, audio_path, start, record in pieces:
            guitar = _partner(audio_path)
            try:
                stems = _decoded(cache, folder, record, guitar, sources, rate)
            except (StemDeskError, OSError) as error:
                print(f"skipped {folder.relative_to(out)}: {error}", flush=True)
                continue
            real_guitar |= guitar is not None
            if start is None:  # a whole song: its whole windows
                decoded_windows += [
                    (i * WINDOW_SECONDS, stems[:, :, i * window : (i + 1) * window])
                    for i in range(stems.shape[-1] // window)
                ]
            else:
                decoded_windows.append((start, stems[:, :, :window]))
        if not decoded_windows:
            continue
        result.real_guitar_songs += real_guitar
        result.song_sha256.append(sha)
        energy = [_energy(part.sum(0, dtype=np.float32)) for _, part in decoded_windows]
        loud = _loud(energy)
        result.silent_windows += len(decoded_windows) - len(loud)
        package = result.packages.setdefault(row["package"], {"licence": row["licence"], "songs": 0, "seconds": 0.0})
        package["songs"] += 1
        title = source_path.parent.name if source_path.stem == "song" else source_path.stem
        for i in _spread(loud, windows_per_song):
            start, part = decoded_windows[i]
            usable = []
            for s, name in enumerate(sources):
                level = 10 * math.log10(_energy(part[s]) / energy[i] + 1e-20)
                unsure = FAINT_DB[0] < level < FAINT_DB[1]
                usable.append(not unsure and (targets is None or name in targets))
                if unsure:
                    result.faint[name] = result.faint.get(name, 0) + 1
            result.songs.append(Song(f"{row['package']}:{title}@{start:.0f}s", part, tuple(usable), rate))
            result.windows += 1
            result.seconds += part.shape[-1] / rate
            package["seconds"] += part.shape[-1] / rate
        if budget_seconds is not None and result.seconds >= budget_seconds:
            break
    return result


def _energy(audio: np.ndarray) -> float:
    """Mean square of int16 samples (scaled by 32768) as a float64 sum: the windows' levels."""
    return float(np.mean(np.square(audio, dtype=np.float64))) / 32768.0**2


def _decoded(
    cache: Path, folder: Path, record: dict, guitar: Path | None, sources: Sequence[str], rate: int
) -> np.ndarray:
    """The label stems in ``folder`` (a real ``guitar`` added to "other") decoded, at ``rate``, as int16
    (sources, channels, length), scaled together so no sample clips (their sum stays the song) and memory-mapped
    from ``decoded/<key>.npy`` in the cache: the file is written the first time (decoding and resampling FLAC is
    most of a cold load), and the training windows are views of it, so the operating system pages them in and out
    instead of a run holding hours of labels in memory (975 windows of four stems are 13.7 GB as int16). The key
    is the labels' sha256s (from the batch's record; else their sizes and times), the guitar, the sources and the
    rate: new labels get a new file."""
    labels = sorted(output["sha256"] for output in record.get("outputs", []))
    if not labels:  # a record without its outputs' sha256: the files as they are now
        labels = [
            [name, (folder / f"{name}.flac").stat().st_size, (folder / f"{name}.flac").stat().st_mtime_ns]
            for name in sources
        ]
    identity = {
        "labels": labels,
        "guitar": [str(guitar), guitar.stat().st_size] if guitar is not None else None,
        "sources": list(sources),
        "rate": rate,
        "version": 1,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    path = cache / "decoded" / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError) as error:  # damaged (a full disk, a crash of the disk): decode it again
            print(f"{path} was unreadable ({error}); decoding {folder.name} again", flush=True)
            path.unlink()
    files = {name: [folder / f"{name}.flac"] for name in sources}
    if guitar is not None:
        files["other"].append(guitar)  # read_song adds it to the teacher's other
    decoded = read_song(SongFiles(folder.name, files), mixture=False)
    stems = np.stack([decoded.stems[name] for name in sources])
    stems = resample(torch.from_numpy(np.ascontiguousarray(stems)), decoded.sample_rate, rate).numpy()
    peak = float(np.abs(stems).max(initial=0.0))
    if peak > 0.99:  # int16 storage: scale instead of clipping, which would break the sum
        stems *= 0.99 / peak
    stems16 = np.clip(np.round(stems * 32768.0), -32768, 32767).astype(np.int16)
    try:
        with atomic_path(path) as temp, open(temp, "wb") as handle:
            np.save(handle, stems16)
    except OSError as error:  # a read-only cache, a full disk: train from memory, as before there was a file
        print(f"{folder.name}: kept in memory, {path.parent} cannot hold it ({error})", flush=True)
        return stems16
    return np.load(path, mmap_mode="r")


@dataclass(frozen=True)
class Teacher:
    """Training on a teacher's labels (distillation): the teacher model's id, the share of training examples its
    labels make up (the rest come from the real stems), the 20-second windows taken per song, and the sources whose
    labels are targets (None: all four)."""

    model: str = "htdemucs"
    share: float = 0.5
    windows: int = 5
    targets: tuple[str, ...] | None = None

    @classmethod
    def from_options(cls, args: argparse.Namespace) -> Teacher | None:
        """From the options of `stemdesk.training.options.add_teacher_options`; None without --teacher."""
        if not args.teacher:
            return None
        targets = tuple(args.teacher_targets) if args.teacher_targets else None
        return cls(args.teacher, args.teacher_share, args.teacher_windows, targets)

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 0.95:
            raise StemDeskError(
                f"The teacher's share of training examples is above 0 and at most 0.95 (the real stems keep the "
                f"rest), not {self.share:g}."
            )
        if self.windows < 1:
            raise StemDeskError(f"Take at least one window per labelled song, not {self.windows}.")
        unknown = sorted(set(self.targets or ()) - set(SOURCES))
        if unknown:
            raise StemDeskError(f"The teacher labels {', '.join(SOURCES)}; it has no {', '.join(unknown)}.")

    def options(self) -> dict:
        """The options as plain JSON values (what a run's settings are compared by)."""
        return {"model": self.model, "share": self.share, "windows": self.windows, "targets": self.targets}


def add_teacher(
    train: list[Song], teacher: Teacher, cache: Path | None = None, songs: Collection[str] | None = None
) -> Labelled:
    """Load the teacher's labelled windows from ``cache`` (default: `default_cache`) at the training songs' rate
    and append them to ``train``, each weighted so that the labels make up ``teacher.share`` of the audio the
    sampler draws from and the real songs the rest. Returns what was loaded (for the card, `teacher_card`). Raises
    StemDeskError when the cache holds no labels of that teacher yet, saying how to make them. ``songs``: only
    these labelled songs (sha256 of the audio), every one of which must be labelled."""
    labelled = load_labelled(
        cache or default_cache(),
        teacher.model,
        train[0].sample_rate,
        teacher.windows,
        targets=teacher.targets,
        songs=songs,
    )
    if not labelled.songs:
        raise StemDeskError(
            f"No songs labelled by {teacher.model} in {cache or default_cache()} yet: run `python -m "
            f"stemdesk.training.corpus fetch`, then `python -m stemdesk.training.corpus label --model {teacher.model}`."
        )
    real = sum(song.length for song in train)
    taught = sum(song.length for song in labelled.songs)
    for song in labelled.songs:
        song.weight = teacher.share / (1 - teacher.share) * real / taught
    train += labelled.songs
    return labelled


# What training on teacher labels makes of the weights, in the card's words.
TEACHER_TERMS = "personal and research use only"


def teacher_card(card: dict, teacher: Teacher, labelled: Labelled, train: Sequence[Song], remix: float) -> None:
    """Add to a model card (in place) what training on ``teacher``'s labels means: ``training_data.teacher`` (the
    options, the windows kept and dropped, and each source's expected share of the training examples drawn from
    the labels when the sampler draws from ``train`` with remixing probability ``remix``: without remixing only
    the windows whose four labels are all targets are drawn), the packages' licences and the labels' own, and, in
    ``training_data.research_only`` and the weights' licence, that the weights are for personal and research use
    only."""
    data = card.setdefault("training_data", {})
    names = {song.name for song in labelled.songs}
    drawn = Sampler(train, 1, remix).share(names)
    entry = {
        "model": teacher.model,
        "share_of_examples": teacher.share,
        "drawn_share_per_source": {name: round(value, 3) for name, value in zip(SOURCES, drawn)},
        **labelled.summary(),
    }
    entry["note"] = (
        "pseudo-labels: the teacher's stems of real songs from Debian's music packages, made to sum exactly to "
        "each song; the real stems stay the primary targets"
    )
    data["teacher"] = entry
    reason = (
        f"trained on the outputs of {teacher.model}, whose weights are released for {TEACHER_TERMS}: these "
        f"weights are for {TEACHER_TERMS}"
    )
    earlier = data.get("research_only")
    data["research_only"] = f"{earlier}; and {reason}" if earlier else reason
    licences = dict(card.get("licenses", {}))
    for package, found in labelled.packages.items():
        licences[package] = found["licence"]
    licences[f"{teacher.model}-labels"] = f"derived from {teacher.model}'s weights ({TEACHER_TERMS})"
    weights = licences.get("weights", "")
    if TEACHER_TERMS not in weights:
        licences["weights"] = (weights + "; " if weights else "") + (
            f"{TEACHER_TERMS} (trained on {teacher.model}'s labels)"
        )
    card["licenses"] = licences


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["fetch", "label", "status", "rebuild"])
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--packages", default=",".join(PACKAGES))
    parser.add_argument("--model", default="htdemucs")
    parser.add_argument("--threads", type=int, default=1, help="threads of each labelling process")
    parser.add_argument("--workers", type=int, default=1, help="labelling processes (one per free core)")
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="where the teacher runs (auto: a GPU when there is one, else the CPU)",
    )
    parser.add_argument(
        "--windows",
        type=int,
        default=0,
        help="label this many 20-second windows of each song not labelled whole, not the whole song (0: whole songs)",
    )
    args = parser.parse_args(argv)
    if args.windows < 0:
        parser.error(f"--windows is a number of windows per song (0: whole songs), not {args.windows}")
    packages = args.packages.split(",")
    # label: only the packages asked for (default: every package fetched)
    chosen = packages if args.packages != parser.get_default("packages") else None
    # SIGTERM unwinds like Ctrl-C: a label run stops its batch (`_call`), a fetch removes its partial folder
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        _act(args, packages, chosen)
    except KeyboardInterrupt:
        sys.exit(f"stopped: what was done is kept; run the same command again to carry on ({args.action})")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _act(args: argparse.Namespace, packages: list[str], chosen: list[str] | None) -> None:
    if args.action == "rebuild":
        shutil.rmtree(args.cache, ignore_errors=True)
        fetch(args.cache, packages)
        sys.exit(label(args.cache, args.model, args.threads, chosen, args.workers, args.windows, args.device))
    if args.action == "fetch":
        fetch(args.cache, packages)
    if args.action == "label":
        sys.exit(label(args.cache, args.model, args.threads, chosen, args.workers, args.windows, args.device))
    print(json.dumps(status(args.cache, args.model), indent=1))


if __name__ == "__main__":
    main()
