"""Unlabelled real music from Debian's archive, labelled by a teacher model (HTDemucs) for distillation.

    .venv/bin/python -m stemdesk.training.corpus fetch  [--cache DIR] [--packages a,b]   download and unpack the packages
    .venv/bin/python -m stemdesk.training.corpus label  [--cache DIR] [--model htdemucs]  label what is not labelled yet
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

Licences: each package's /usr/share/doc/<package>/copyright, kept beside its audio and summarised in the manifest.
The labels derive from HTDemucs weights released for personal and research use only; so do models trained on them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from stemdesk.core.errors import AudioError
from stemdesk.io.atomic import atomic_folder, atomic_write_bytes
from stemdesk.io.audio import probe
from stemdesk.io.model_store import find_model, sha256_file

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


def label(cache: Path, model: str, threads: int) -> int:
    """Label every song of the manifest not labelled yet, through `stemdesk batch` (resumable)."""
    manifest = cache / "manifest.jsonl"
    if not manifest.is_file():
        raise SystemExit(f"No manifest in {cache}: run `python -m stemdesk.training.corpus fetch` first.")
    out = labels_dir(cache, model)
    command = [
        sys.executable,
        "-m",
        "stemdesk",
        "batch",
        str(manifest),
        "-o",
        str(out),
        "--model",
        model,
        "--format",
        "flac",
        "--bit-depth",
        "16",
        "--workers",
        "1",
        "--threads-per-worker",
        str(threads),
    ]
    print(" ".join(command), flush=True)
    return subprocess.call(command)


def status(cache: Path, model: str) -> dict:
    rows = (
        [json.loads(line) for line in (cache / "manifest.jsonl").read_text().splitlines()]
        if (cache / "manifest.jsonl").is_file()
        else []
    )
    done: set[str] = set()
    records = labels_dir(cache, model) / "stemdesk-batch.jsonl"
    if records.is_file():
        for line in records.read_text().splitlines():
            record = json.loads(line)
            if record.get("status") == "done":
                done.add(record.get("input_sha256", ""))
    by_package: dict[str, list[float]] = {}
    for row in rows:
        entry = by_package.setdefault(row["package"], [0.0, 0.0])
        entry[0] += row["seconds"] / 60
        entry[1] += row["seconds"] / 60 if row["sha256"] in done else 0.0
    return {
        "songs": len(rows),
        "minutes": round(sum(r["seconds"] for r in rows) / 60, 1),
        "labelled_minutes": round(sum(v[1] for v in by_package.values()), 1),
        "packages": {k: {"minutes": round(v[0], 1), "labelled": round(v[1], 1)} for k, v in by_package.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["fetch", "label", "status", "rebuild"])
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--packages", default=",".join(PACKAGES))
    parser.add_argument("--model", default="htdemucs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.action == "rebuild":
        shutil.rmtree(args.cache, ignore_errors=True)
        fetch(args.cache, args.packages.split(","))
        sys.exit(label(args.cache, args.model, args.threads))
    if args.action == "fetch":
        fetch(args.cache, args.packages.split(","))
    if args.action == "label":
        sys.exit(label(args.cache, args.model, args.threads))
    print(json.dumps(status(args.cache, args.model), indent=1))


if __name__ == "__main__":
    main()
