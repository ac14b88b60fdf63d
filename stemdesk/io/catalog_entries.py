"""The model catalog's entries as read from its file (`stemdesk.io.catalog` installs them): each model with what its
publisher states (files, config, licence, training data, quality) and how it applies to a stem, checked as it is read.
Facts only, like `stemdesk.io.installable`: the model store asks it what a model not installed is (`find_entry`), and
the installer imports it, never the reverse. Reading it loads no torch."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..core.errors import ModelError

CATALOG_ENV = "STEMDESK_CATALOG"
# The importer's kinds: what StemDesk runs, and what a catalog entry may name that it does not run yet.
RUNS = {"htdemucs": "HTDemucs", "bs_roformer": "BS-RoFormer", "mel_band_roformer": "Mel-RoFormer", "mdx23c": "MDX23C"}
ARCHITECTURES = {**RUNS}


@dataclass(frozen=True)
class CatalogFile:
    file: str
    url: str
    size_bytes: int | None
    sha256: str | None
    sha256_prefix: str | None  # Demucs's: the first hex digits of the sha256, in the file's name
    source: str  # where the facts were read
    mirrors: tuple[str, ...] = ()  # other addresses of the same bytes, tried in order when ``url`` fails

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors)


@dataclass(frozen=True)
class CatalogConfig:
    file: str
    url: str
    sha256: str | None
    content: str | None  # the publisher's YAML itself, when small enough to keep in the catalog
    source: str
    content_source: str = ""  # where ``content`` was read, when not at ``url`` (a copy distributed with the model)


@dataclass(frozen=True)
class Application:
    """How a catalog model applies to a stem (its entry's ``applies_to`` and ``removes``): it splits ``parent``
    into ``children``, each child one of the model's stems (``{"lead": "other", "backing": "karaoke"}``); a clean-up
    (de-reverb, denoise) names the child that holds what it takes out (``removes``), the other holds the stem
    cleaned. The install writes it into the model's card as a split (`card_fields`)."""

    parent: str
    children: dict[str, str]  # child's name → the model's stem it is
    removes: str | None = None  # a clean-up's child holding what it removes; None for a plain split

    @property
    def stems(self) -> list[str]:
        return list(self.children.values())

    def card_fields(self) -> dict[str, Any]:
        """What the installed model's card says so that the split machinery takes it as it is (`stemdesk.jobs.split`):
        ``split`` (its parent, the children and the model's stems they are, and for a clean-up what it removes), the
        children as the stems written (``sources``) and each child as the model's stem it is (``outputs``)."""
        split: dict[str, Any] = {
            "parent": self.parent,
            "children": dict(self.children),
            "from": "the model catalog's applies_to",
        }
        if self.removes is not None:
            split["removes"] = self.removes
        return {
            "split": split,
            "sources": list(self.children),
            "outputs": {child: [stem] for child, stem in self.children.items()},
        }

    def usage(self, model_id: str) -> str:
        """How it is used, in a producer's words: "--split vocals=ID: vocals/lead (its other), vocals/backing (its
        karaoke)"; a child named as its stem is named once."""
        flag = "--clean" if self.removes else "--split"
        children = ", ".join(
            f"{self.parent}/{child}" + ("" if child == stem else f" (its {stem})")
            for child, stem in self.children.items()
        )
        return f"{flag} {self.parent}={model_id}: {children}, which add up to the {self.parent} exactly"

    def mismatch(self, stems: list[str]) -> str | None:
        """What is wrong when the model's stems (as its config or weights name them) are not those this maps."""
        if sorted(stems) == sorted(self.stems):
            return None
        return f"its stems are {', '.join(stems)}, but the catalog maps {', '.join(self.stems)} onto {self.parent}"


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    summary: str
    stems: list[str] | None  # None: named by its config, read at install
    architecture: str
    cannot_run: str | None  # why StemDesk cannot run it yet; None when it can
    config: CatalogConfig | None
    files: list[CatalogFile]
    checksum: str
    licence: str
    licence_source: str
    training_data: str
    quality: list[dict[str, Any]]
    speed: dict[str, Any] | None
    raw: dict[str, Any]
    applies_to: Application | None = None  # None: a model of whole songs

    @property
    def runs(self) -> bool:
        return self.cannot_run is None

    @property
    def size_bytes(self) -> int | None:
        sizes = [f.size_bytes for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    def size_text(self) -> str:
        size = self.size_bytes
        if size is not None:
            return f"{size / 1e6:,.0f} MB" if size >= 10e6 else f"{size / 1e6:.1f} MB"
        about = re.search(r"\b[Aa]bout ([\d,.]+ [MG]B)\b", str(self.raw.get("size_note") or ""))
        return f"about {about.group(1)}" if about else "size not published"

    def stems_text(self) -> str:
        return " ".join(self.stems) if self.stems else "(named by its config)"

    def quality_text(self) -> str:
        """The first published figure with its metric and data, e.g. "vocals 10.98 (SDR, dB; MVSep Multisong dataset)"."""
        if not self.quality:
            return "not published"
        first = self.quality[0]
        values = ", ".join(f"{k} {v}" for k, v in (first.get("values") or {}).items())
        return f"{values} ({first.get('metric', 'metric not stated')}; {first.get('data', 'data not stated')})"

    def download_text(self) -> str:
        """Where its files come from: the address of its one file, or how many files and their addresses (each
        with its mirrors, tried when the publisher's address fails)."""

        def where(item: CatalogFile) -> str:
            return item.url + "".join(f" (or its mirror {url})" for url in item.mirrors)

        if len(self.files) == 1:
            return where(self.files[0])
        return f"{len(self.files)} files: " + ", ".join(where(item) for item in self.files)

    def not_runnable(self) -> str:
        return (
            f"{self.id} ({self.name}) cannot be installed yet: {self.cannot_run}. Nothing was downloaded. The "
            "catalog lists it so you know it is coming."
        )

    def speed_text(self) -> str:
        """The speed the catalog records (measured by StemDesk), or that it is not measured yet."""
        if not self.speed:
            return "not measured yet"
        speed = self.speed
        reduced = speed.get("precision") == "bf16" and speed.get("bfloat16_minutes_by_threads")
        ours = (speed.get("bfloat16_minutes_by_threads") if reduced else speed.get("minutes_by_threads")) or {}
        theirs = speed.get("publisher_minutes_by_threads") or {}
        if not ours:
            return "not measured yet"
        song = f"{float(speed.get('song_seconds', 180)) / 60:g}-minute song"
        counts = sorted(ours, key=int)
        times = ", ".join(f"{ours[c]:g} min on {c} thread{'s' if c != '1' else ''}" for c in counts)
        times += ", in bfloat16 as StemDesk runs it on that CPU" if reduced else ""
        publisher = " and ".join(f"{theirs[c]:g}" for c in counts if c in theirs)
        return (
            f"a {song} in {times}"
            + (f" (the publisher's code: {publisher})" if publisher else "")
            + (f"; {speed['cpu']}" if speed.get("cpu") else "")
        )

    def licence_text(self) -> str:
        """What a front end shows before it installs, for the user to accept: the licence as the publisher states it
        and where, any caution, the training data, and what is downloaded from where. One fact a line."""
        lines = [
            f"{self.name}: {self.summary}",
            f"Licence of its weights, as its publisher states it: {self.licence} ({self.licence_source}).",
        ]
        if self.raw.get("caution"):
            lines.append(str(self.raw["caution"]))
        lines.append(f"Training data: {self.training_data}. Download: {self.size_text()} from {self.download_text()}")
        return "\n".join(lines)

    def not_installed(self) -> str:
        """The error for this model asked for (``--model``, ``--split``, ``--clean``) before it is installed: that it
        is in the catalog, what it is and what installing it fetches. Like `Installable.not_installed` it names no
        front end's way to install it: each adds its own (the error's setting "install")."""
        if not self.runs:
            return (
                f"{self.id!r} is not installed, and cannot be yet: it is in the model catalog ({self.name}), but "
                f"{self.cannot_run}."
            )
        applies, use = self.applies_to, ""
        if applies is not None:
            *first, last = applies.children
            use = f", which splits {applies.parent} into {', '.join(first)} and {last}"
        size = self.size_text()
        size = "its weights (their size is not published)" if size == "size not published" else size
        return (
            f"{self.id!r} is not installed. It is in the model catalog: {self.name}{use}. Installing it downloads "
            f"{size} and first shows its licence, which you must accept: {self.licence}."
        )


def catalog_path() -> Path:
    """The catalog in use: ``STEMDESK_CATALOG`` when set, else the one shipped with StemDesk."""
    override = os.environ.get(CATALOG_ENV)
    if override:
        return Path(override)
    return Path(str(resources.files(__package__).joinpath("catalog.json")))


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"The model catalog's {where} has no {name}. Fix the catalog file.")
    return value


def _entry(raw: Any, path: Path) -> CatalogEntry:
    if not isinstance(raw, dict):
        raise ModelError(f'The model catalog "{path}" holds an entry that is not an object. Fix the catalog file.')
    model_id = _text(raw.get("id"), "entry", "id")
    where = f"entry {model_id!r}"
    architecture = _text(raw.get("architecture"), where, "architecture")
    if architecture not in ARCHITECTURES:
        raise ModelError(
            f"The model catalog's {where} names the architecture {architecture!r}; StemDesk knows "
            f"{', '.join(ARCHITECTURES)}. Fix the catalog file."
        )
    cannot_run = raw.get("cannot_run")
    if architecture not in RUNS and not cannot_run:
        cannot_run = f"StemDesk does not run {ARCHITECTURES[architecture]} networks yet"
    files = []
    for item in raw.get("files") or []:
        if not isinstance(item, dict):
            raise ModelError(f"The model catalog's {where} has a file that is not an object. Fix the catalog file.")
        size, mirrors = item.get("size_bytes"), item.get("mirrors") or []
        if not isinstance(mirrors, list):
            raise ModelError(f"The model catalog's {where} has mirrors that are not a list. Fix the catalog file.")
        files.append(
            CatalogFile(
                file=_text(item.get("file"), where, "file name"),
                url=_text(item.get("url"), where, "file address"),
                size_bytes=int(size) if isinstance(size, int) else None,
                sha256=item.get("sha256") or None,
                sha256_prefix=item.get("sha256_prefix") or None,
                source=str(item.get("source") or ""),
                mirrors=tuple(
                    _text(m.get("url") if isinstance(m, dict) else m, where, "mirror address") for m in mirrors
                ),
            )
        )
    if not files:
        raise ModelError(f"The model catalog's {where} lists no files to download. Fix the catalog file.")
    config = raw.get("config")
    stems = raw.get("stems")
    applies_to = _application(raw, where, stems if isinstance(stems, list) else None)
    return CatalogEntry(
        id=model_id,
        name=str(raw.get("name") or model_id),
        summary=str(raw.get("summary") or ""),
        stems=[str(s) for s in stems] if isinstance(stems, list) else None,
        architecture=architecture,
        cannot_run=str(cannot_run) if cannot_run else None,
        config=(
            CatalogConfig(
                file=_text(config.get("file"), where, "config file name"),
                url=_text(config.get("url"), where, "config address"),
                sha256=config.get("sha256") or None,
                content=config.get("content") if isinstance(config.get("content"), str) else None,
                source=str(config.get("source") or ""),
                content_source=str(config.get("content_source") or ""),
            )
            if isinstance(config, dict)
            else None
        ),
        files=files,
        checksum=str(raw.get("checksum") or ""),
        licence=str(raw.get("licence") or "not stated"),
        licence_source=str(raw.get("licence_source") or ""),
        training_data=str(raw.get("training_data") or "not stated"),
        quality=[q for q in raw.get("quality") or [] if isinstance(q, dict)],
        speed=raw.get("speed") if isinstance(raw.get("speed"), dict) else None,
        raw=raw,
        applies_to=applies_to,
    )


# The mixer's own names, which no stem may take (`stemdesk.mixer.mix`), and what a file name cannot hold.
RESERVED_CHILDREN = {"master", "bus", "gain_db", "pan", "mute", "solo", "send", "fx"}


def _application(raw: dict[str, Any], where: str, stems: list[Any] | None) -> Application | None:
    """An entry's ``applies_to`` (and ``removes``), checked: one parent stem, each child a plain name, each of the
    model's stems used by exactly one child, so the children add up to the parent."""
    applies, removes = raw.get("applies_to"), raw.get("removes")
    if applies is None:
        if removes is not None:
            raise ModelError(
                f"The model catalog's {where} names what it removes but no applies_to. Fix the catalog file."
            )
        return None
    fix = "Fix the catalog file."
    if not isinstance(applies, dict) or len(applies) != 1:
        raise ModelError(
            f"The model catalog's {where} has an applies_to that is not one stem's split (e.g. {{\"vocals\": "
            f'{{"lead": "other", "backing": "karaoke"}}}}). {fix}'
        )
    ((parent, children),) = applies.items()
    if not isinstance(children, dict) or len(children) < 2:
        raise ModelError(f"The model catalog's {where} splits {parent} into fewer than two children. {fix}")
    for name in [parent, *children, *children.values()]:
        if not isinstance(name, str) or not name.strip() or any(c in name for c in '/\\:*?"<>|') or name[0] == ".":
            raise ModelError(f"The model catalog's {where} names a stem {name!r} that cannot be a file name. {fix}")
    reserved = sorted(RESERVED_CHILDREN & set(children))
    if reserved:
        raise ModelError(f"The model catalog's {where} names a child {reserved[0]!r}, a name the mixer keeps. {fix}")
    used = list(children.values())
    twice = sorted({s for s in used if used.count(s) > 1})
    if twice:
        raise ModelError(
            f"The model catalog's {where} gives its stem {twice[0]!r} to two children; each of the model's stems "
            f"must be one child, so that the children add up to {parent}. {fix}"
        )
    application = Application(str(parent), {str(k): str(v) for k, v in children.items()}, None)
    if stems is not None:
        problem = application.mismatch([str(s) for s in stems])
        if problem:
            raise ModelError(f"The model catalog's {where}: {problem}. {fix}")
    if removes is not None:
        if not isinstance(removes, str) or removes not in children:
            raise ModelError(
                f"The model catalog's {where} removes {removes!r}, which is none of its children "
                f"({', '.join(children)}). {fix}"
            )
        application = Application(application.parent, application.children, str(removes))
    return application


def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    """The catalog's entries by id (raises ModelError, saying which file, when it cannot be read)."""
    path = path or catalog_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f'The model catalog "{path}" does not exist. Check {CATALOG_ENV} or reinstall StemDesk.'
        ) from None
    except (OSError, ValueError) as error:
        raise ModelError(
            f'The model catalog "{path}" cannot be read ({error}). Fix it or reinstall StemDesk.'
        ) from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ModelError(f'The model catalog "{path}" has no "models" list. Fix it or reinstall StemDesk.')
    entries: dict[str, CatalogEntry] = {}
    for raw in models:
        entry = _entry(raw, path)
        if entry.id in entries:
            raise ModelError(f"The model catalog lists {entry.id!r} twice. Fix the catalog file.")
        entries[entry.id] = entry
    return entries


def find_entry(model_id: str, path: Path | None = None) -> CatalogEntry | None:
    return load_catalog(path).get(model_id)


def by_hand(entry: CatalogEntry, error: ModelError) -> str:
    """An error of a download (its setting "file", its value the address), with how to install the file fetched
    elsewhere: the address to fetch and the `stemdesk models install ID --file FILE` that installs it (a --file for
    each of its files, and its ``--config`` where the catalog does not hold the YAML). Both front ends say it so."""
    several = len(entry.files) > 1
    url = entry.download_text() if several or entry.files[0].mirrors else error.value or entry.files[0].url
    config = entry.config
    command = f"stemdesk models install {entry.id} " + " ".join(f"--file {item.file}" for item in entry.files)
    if config is not None and config.content is None:
        command += f" --config {config.file}"
        url = f"{url} and {config.url}"
    return f"{error} Or fetch {url} on a machine with a connection and run: {command}"
