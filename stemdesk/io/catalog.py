"""The catalog: models the community publishes (for Music-Source-Separation-Training, UVR and Demucs) that StemDesk
downloads and imports with one command, ``stemdesk models install ID``.

The catalog is data, ``catalog.json`` beside this module (``STEMDESK_CATALOG`` names another file: tests, or a
studio's own list), read by `stemdesk.io.catalog_entries`, whose names this module gives too. Each entry says what its
publisher states, with where it was read: the files' addresses, sizes and checksums, the config (the YAML's address
and, where small, its text), the licence and training data (or "not stated"), quality as published with its source;
speed is null until StemDesk measures it. docs/catalog.md describes the fields.

Installing is a transaction (STYLE.md, 21): the config is checked before anything large is downloaded, the weights
are downloaded (`stemdesk.io.download`: resumable, checked against the catalog's size and sha256), converted by the
checkpoint importer (`stemdesk.io.model_import`) and written to a temporary folder renamed into the models folder
once complete. Where the publisher gives no sha256 the card records the one of the file installed. Listing the
catalog loads no torch: the importer is loaded by `install`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.cancel import CancelToken
from ..core.errors import ModelError
from .catalog_entries import (  # the entries as read; here they are installed
    ARCHITECTURES,
    CATALOG_ENV,
    RUNS,
    Application,
    CatalogConfig,
    CatalogEntry,
    CatalogFile,
    by_hand,
    catalog_path,
    find_entry,
    load_catalog,
)
from .model_store import ModelCard, read_card, user_models_dir
from .paths import cache_dir

__all__ = [
    "ARCHITECTURES",
    "CATALOG_ENV",
    "RUNS",
    "Application",
    "CatalogConfig",
    "CatalogEntry",
    "CatalogFile",
    "apply_to_card",
    "by_hand",
    "catalog_path",
    "downloads_dir",
    "find_entry",
    "install",
    "load_catalog",
]

Progress = Callable[[str, float], None]  # (what is happening, fraction done 0..1)

CONFIG_LIMIT = 1 << 20  # a YAML config is a few kB


def downloads_dir() -> Path:
    """Where downloads are kept while they are fetched (``<file>.part``), and resumed from after a cut."""
    return cache_dir() / "downloads"


# --- installing ----------------------------------------------------------------------------------------------------


def _scaled(report: Progress, low: float, high: float) -> Progress:
    return lambda what, fraction: report(what, low + (high - low) * fraction)


def _installed(entry: CatalogEntry, root: Path) -> Path | None:
    from .model_store import find_model

    if (root / entry.id / "card.json").is_file():
        return root / entry.id
    try:
        return find_model(entry.id).folder
    except ModelError:
        return None


def _config_file(
    entry: CatalogEntry, folder: Path, given: Path | None, report: Progress, cancel: CancelToken
) -> tuple[Path | None, str | None]:
    """The config to import with, as a file, and its sha256: the one given, the catalog's own text, or downloaded
    from the publisher (checked against the catalog's sha256 when it has one)."""
    from . import download  # urllib and ssl load when something is installed, not with the list of models

    config = entry.config
    if given is not None:
        if not Path(given).is_file():
            raise ModelError(f'The config "{given}" does not exist. Check its path.', setting="config")
        digest = download.sha256_of(Path(given))
        if config is not None and config.sha256 and digest != config.sha256 and not _same_settings(config, given):
            raise ModelError(
                f'"{Path(given).name}" is not the config the catalog names for {entry.id} (sha256 {digest[:12]}…, '
                f"expected {config.sha256[:12]}…). Fetch {config.url}. Nothing was installed."
            )
        return Path(given), digest
    if config is None:
        return None, None
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / config.file
    if config.content is not None:
        data = config.content.encode("utf-8")
        target.write_bytes(data)
        digest = download.sha256_of(target)
        if config.sha256 and digest != config.sha256:
            raise ModelError(
                f"The catalog's config text for {entry.id} does not match its own sha256; the catalog file is "
                "damaged. Reinstall StemDesk or fix the catalog. Nothing was installed."
            )
        return target, digest
    report(f"Downloading {config.file}", 0.0)
    fetched = download.fetch(config.url, target, sha256=config.sha256, cancel=cancel, label=config.file)
    if fetched.size > CONFIG_LIMIT:
        raise ModelError(f"{config.url} is larger than 1 MB, so it is not a model config. Nothing was installed.")
    return fetched.path, fetched.sha256


def _settings(data: dict[str, Any]) -> dict[str, Any]:
    """What in a config makes the network and its stems: MSST's model and audio sections and the instruments, or a
    Demucs bag's models and weights (not how it was trained, nor the inference defaults StemDesk's chunker sets)."""
    training = data.get("training")
    training = training if isinstance(training, dict) else {}
    kept = {key: data.get(key) for key in ("model", "audio", "models", "weights", "segment")}
    return {**kept, "instruments": training.get("instruments"), "target": training.get("target_instrument")}


def _same_settings(config: CatalogConfig, given: Path) -> bool:
    """Whether a config the user gives holds the same settings as the catalog's text of it (the same YAML laid out
    otherwise, as copies of one model's config often are)."""
    from .model_import import parse_config, read_config

    if config.content is None:
        return False
    return _settings(read_config(given)) == _settings(parse_config(config.content, config.file))


def _check_bag(entry: CatalogEntry, config: Path, data: Any) -> None:
    """What the importer would refuse in a Demucs bag's YAML, before its models are fetched: it must name the
    entry's files (by the signature in their names) and weigh each of them once per stem."""
    from .model_import import bag_settings, demucs_signature, is_demucs_bag

    if not is_demucs_bag(data):
        raise ModelError(
            f'{entry.id}\'s config "{config.name}" is not a Demucs bag (models: [...], weights: [[...]]). The catalog '
            "entry is wrong; nothing was downloaded."
        )
    models, weights, _ = bag_settings(data, config)
    files = sorted(demucs_signature(item.file) for item in entry.files)
    if sorted(models) != files:
        raise ModelError(
            f'{entry.id}\'s config "{config.name}" names the models {", ".join(models)}, but the catalog lists the '
            f"files of {', '.join(files)}. The catalog entry is wrong; nothing was downloaded."
        )
    stems = len(entry.stems) if entry.stems else None
    if weights is not None and (len(weights) != len(models) or any(stems and len(row) != stems for row in weights)):
        raise ModelError(
            f'{entry.id}\'s config "{config.name}" has weights that are not one row per model ({len(models)}) of one '
            f"weight per stem ({stems}). The catalog entry is wrong; nothing was downloaded."
        )


def _check_config(entry: CatalogEntry, config: Path) -> None:
    """What the importer would refuse in a RoFormer or MDX23C config, or a Demucs bag's YAML, before gigabytes of
    weights are fetched for it."""
    from .model_import import ROFORMER_UNSUPPORTED, is_mdx23c, mdx23c_settings, msst_stems, read_config

    data = read_config(config)
    if entry.architecture == "htdemucs":
        _check_bag(entry, config, data)
        return
    model = data.get("model")
    if not isinstance(model, dict):
        raise ModelError(
            f'{entry.id}\'s config "{config.name}" has no "model" section: it is not a Music-Source-Separation-'
            "Training config. The catalog entry is wrong; nothing was downloaded."
        )
    kind = "mel_band_roformer" if "num_bands" in model else "bs_roformer" if "freqs_per_bands" in model else None
    kind = "mdx23c" if is_mdx23c(model) else kind
    if kind != entry.architecture:
        found = ARCHITECTURES.get(kind or "", "no network StemDesk knows")
        raise ModelError(
            f'{entry.id}\'s config "{config.name}" describes {found}, but the catalog says '
            f"{ARCHITECTURES[entry.architecture]}. The catalog entry is wrong; nothing was downloaded."
        )
    if kind == "mdx23c":
        mdx23c_settings(data, config)
    else:
        used = [f"{k}={model[k]!r}" for k, v in ROFORMER_UNSUPPORTED.items() if k in model and model[k] != v]
        if used:
            raise ModelError(
                f"{entry.id}'s config \"{config.name}\" uses {', '.join(used)}, which StemDesk's RoFormer does "
                "not implement yet, so it cannot run this model. Nothing was downloaded."
            )
    problem = entry.applies_to.mismatch(msst_stems(data, config)) if entry.applies_to else None
    if problem:
        raise ModelError(
            f'{entry.id}\'s config "{config.name}": {problem}. The catalog entry is wrong; nothing was downloaded.'
        )


def _check_given(entry: CatalogEntry, item: CatalogFile, path: Path) -> tuple[int, str]:
    """A file the user fetched elsewhere, checked against the catalog: (its size, its sha256)."""
    from . import download

    if not path.is_file():
        raise ModelError(f'"{path}" does not exist. Check its path.', setting="file", value=item.url)
    size, digest = path.stat().st_size, download.sha256_of(path)
    problem = download.check(path.name, size, digest, item.size_bytes, item.sha256, item.sha256_prefix)
    if problem:
        raise ModelError(
            f"{problem} The catalog's {entry.id} is {item.file} from {item.url}. Nothing was installed.",
            setting="file",
            value=item.url,
        )
    return size, digest


def _given_files(entry: CatalogEntry, given: list[Path]) -> dict[CatalogFile, Path]:
    """Files the user fetched by hand, each paired with the catalog's file it is (by name, else by its checksum
    against the catalog's): every file of the entry must be given once."""
    items = entry.files
    names = ", ".join(item.file for item in items)
    if len(given) != len(items):
        raise ModelError(
            f"{entry.id} is {len(items)} file{'s' if len(items) > 1 else ''} ({names}): give "
            f"{'each with its own --file' if len(items) > 1 else 'it with --file'}, not {len(given)}. Nothing was "
            "installed.",
            setting="file",
            value=items[0].url,
        )
    if len(items) == 1:
        return {items[0]: given[0]}
    from . import download

    paired: dict[CatalogFile, Path] = {}
    for path in given:
        if not path.is_file():
            raise ModelError(f'"{path}" does not exist. Check its path.', setting="file", value=items[0].url)
        item = next((i for i in items if i.file == path.name and i not in paired), None)
        if item is None:
            size, digest = path.stat().st_size, download.sha256_of(path)
            item = next(
                (
                    i
                    for i in items
                    if i not in paired
                    and (i.sha256 or i.sha256_prefix)
                    and download.check(path.name, size, digest, i.size_bytes, i.sha256, i.sha256_prefix) is None
                ),
                None,
            )
        if item is None:
            raise ModelError(
                f'"{path.name}" is none of the files of {entry.id} ({names}) that are not given already. Give each '
                "of them once. Nothing was installed.",
                setting="file",
                value=items[0].url,
            )
        paired[item] = path
    return paired


def install(
    entry: CatalogEntry,
    file: Path | Sequence[Path] | None = None,
    config: Path | None = None,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    target_root: Path | None = None,
    downloads: Path | None = None,
) -> ModelCard:
    """Download (or take ``file``, fetched by hand: one path, or one for each of the entry's files, and
    ``config``), verify, import and install a catalog model into the user's models folder; its licence must have
    been shown and accepted by the front end. Raises ModelError (DownloadError for what the network did) and
    Cancelled; nothing is installed unless all worked. An entry of several files (a Demucs bag) downloads each."""

    report = progress or (lambda what, fraction: None)
    cancel = cancel or CancelToken()
    if not entry.runs:
        raise ModelError(entry.not_runnable())
    given = [Path(file)] if isinstance(file, (str, Path)) else [Path(f) for f in file or ()]
    root = target_root or user_models_dir()
    existing = _installed(entry, root)
    if existing is not None and _needs_application(entry, existing, root):
        report("Writing how it applies to stems into its card", 0.5)
        card = apply_to_card(entry, existing)
        report("Installed", 1.0)
        return card
    if existing is not None:
        raise ModelError(f"{entry.id} is already installed ({existing}). Remove it first to install it again.")
    folder = (downloads or downloads_dir()) / entry.id
    try:
        config_path, config_sha = _config_file(entry, folder, config, report, cancel)
        if config_path is not None and entry.architecture in ("bs_roformer", "mel_band_roformer", "mdx23c", "htdemucs"):
            _check_config(entry, config_path)
        got: list[tuple[CatalogFile, Path, int, str]] = []
        mirrored: dict[str, str] = {}  # file → the mirror it came from, when not the publisher's address
        if given:
            for item, path in _given_files(entry, given).items():
                report(f"Checking {path.name}", 0.05)
                got.append((item, path, *_check_given(entry, item, path)))
        else:
            count = len(entry.files)
            for index, item in enumerate(entry.files):
                step = 0.83 / count
                scaled = _scaled(report, 0.02 + index * step, 0.02 + (index + 1) * step)
                fetched = _fetch(item, folder / item.file, scaled, cancel)
                got.append((item, fetched.path, fetched.size, fetched.sha256))
                if fetched.url != item.url:
                    mirrored[item.file] = fetched.url
        got.sort(key=lambda found: entry.files.index(found[0]))
        cancel.raise_if_cancelled()
        report("Converting the weights", 0.88)
        card = _import(entry, got, config_path, config_sha, root, given=bool(given), mirrored=mirrored)
    except OSError as error:
        raise ModelError(
            f'Could not write to "{folder}" ({error.strerror or error}). Check the disk and the folder\'s '
            "permissions; nothing was installed."
        ) from None
    if not given:  # the model now lives in the models folder; the download is not needed again
        shutil.rmtree(folder, ignore_errors=True)
    report("Installed", 1.0)
    return card


def _fetch(item: CatalogFile, target: Path, report: Progress, cancel: CancelToken) -> Any:
    """One catalog file downloaded from its publisher's address or, when that has no such file, refuses it, cannot
    be reached or serves other bytes, from each of its mirrors in turn (the same checks apply to every address). A
    download cut half-way is not retried elsewhere: trying again resumes it where it stopped."""
    from . import download

    failed: list[download.DownloadError] = []
    for url in item.urls:
        if failed:
            report(f"{item.file} could not be fetched from {_host(failed[-1].url)}; trying {_host(url)}", 0.0)
        try:
            return download.fetch(
                url,
                target,
                size=item.size_bytes,
                sha256=item.sha256,
                sha256_prefix=item.sha256_prefix,
                progress=report,
                cancel=cancel,
            )
        except download.DownloadError as error:
            if not error.elsewhere:
                raise
            failed.append(error)
    if len(failed) == 1:
        raise failed[0]
    first = failed[0]
    tried = " ".join(f"{_host(error.url)}: {error}" for error in failed[1:])
    raise download.DownloadError(
        f"{first} Its mirror{'s' if len(failed) > 2 else ''} failed too. {tried}",
        first.url,
        offline=all(error.offline for error in failed),
        elsewhere=True,
    )


def _host(url: str) -> str:
    from urllib.parse import urlparse

    return urlparse(url).hostname or url


def _architecture(estimator: Any) -> str:
    """The architecture an imported estimator runs, as the catalog names it: a bag's is its members'."""
    from ..core.estimators.bag import Bag

    if isinstance(estimator, Bag):
        kinds = {str(getattr(member, "kind", "")) for member in estimator.members}
        return kinds.pop() if len(kinds) == 1 else Bag.kind
    return str(estimator.kind)


def _import(
    entry: CatalogEntry,
    got: list[tuple[CatalogFile, Path, int, str]],
    config: Path | None,
    config_sha: str | None,
    root: Path,
    given: bool,
    mirrored: dict[str, str] | None = None,
) -> ModelCard:
    from .atomic import atomic_folder
    from .model_import import convert
    from .model_store import save_model

    mirrored = mirrored or {}

    item, weights = got[0][0], got[0][1]
    published = " and ".join(f"{i.file} from {i.url}" for i, *_ in got)
    try:
        converted = convert([path for _, path, *_ in got], config, entry.id, names={p: i.file for i, p, *_ in got})
    except ModelError as error:
        if given:
            several = len(got) > 1
            raise ModelError(
                f"{error} The catalog's {entry.id} is {published}: check that {'these are those files' if several else 'this is that file'}.",
                setting="file",
                value=item.url,
            ) from None
        raise ModelError(
            f"{entry.id} was downloaded and checked, but StemDesk could not import it: {error} The catalog entry "
            f'needs fixing, or StemDesk does not run this model yet. The download is kept in "{weights.parent}" '
            "(delete it to free the space)."
        ) from None
    kind = _architecture(converted.estimator)
    if kind != entry.architecture:
        what = ARCHITECTURES.get(kind, kind)
        names = ", ".join(f'"{path.name}"' for _, path, *_ in got)
        raise ModelError(
            f"{names} hold{'s' if len(got) == 1 else ''} {what} weights, but {entry.id} is a "
            f"{ARCHITECTURES[entry.architecture]}: not the file{'s' if len(got) > 1 else ''} the catalog names "
            f"({published}). Nothing was installed.",
            setting="file",
            value=item.url,
        )
    problem = entry.applies_to.mismatch(list(converted.estimator.sources)) if entry.applies_to else None
    if problem:
        raise ModelError(
            f"{entry.id} was downloaded and imported, but {problem}: the catalog entry needs fixing. Nothing was "
            f'installed; the download is kept in "{weights.parent}" (delete it to free the space).'
        )

    def checked(item: CatalogFile) -> str:
        if item.sha256:
            return "the catalog's sha256 (the publisher's)"
        if item.sha256_prefix:
            return f"the publisher's checksum prefix {item.sha256_prefix}; the full sha256 recorded at this install"
        return "recorded at this install (the publisher gives no checksum)"

    card: dict[str, Any] = {
        "summary": entry.summary,
        "description": converted.description,
        "training_data": entry.training_data,
        "licenses": {
            "weights": f"{entry.licence} (as its publisher states it: {entry.licence_source})",
            "code": "StemDesk's implementation: GPL-3.0-or-later",
        },
        "license_note": str(entry.raw.get("caution") or "")
        or "Installed from the model catalog; the licence is as its publisher states it. Check it before sharing "
        "anything made with it.",
        "redistributable": False,
        "catalog": {
            "id": entry.id,
            "name": entry.name,
            "publisher": entry.raw.get("publisher"),
            "quality": entry.quality,
            "checksum": entry.checksum,
        },
        "speed": entry.speed,
        "source": {
            "format": converted.source_format,
            "files": [
                {
                    "name": item.file,
                    "url": item.url,
                    "size": size,
                    "sha256": digest,
                    "sha256_checked": checked(item),
                    **({"installed_from": str(path)} if given else {}),
                    **({"downloaded_from": mirrored[item.file]} if item.file in mirrored else {}),
                }
                for item, path, size, digest in got
            ],
            "configs": (
                [{"name": config.name, "url": entry.config.url if entry.config else None, "sha256": config_sha}]
                if config is not None
                else []
            ),
        },
        **({"import_notes": converted.notes} if converted.notes else {}),
        **converted.facts,
        **(entry.applies_to.card_fields() if entry.applies_to else {}),
    }
    final = root / entry.id
    try:
        with atomic_folder(final) as staging:
            save_model(staging, entry.id, converted.estimator, card)
    except OSError as error:
        raise ModelError(
            f'Could not write the model to "{root}" ({error.strerror or error}). Free some space or check the '
            "folder's permissions; nothing was installed."
        ) from None
    return read_card(final)


# --- how an installed model applies to a stem ----------------------------------------------------------------------


def _needs_application(entry: CatalogEntry, folder: Path, root: Path) -> bool:
    """Whether ``folder`` holds this catalog model, installed into the user's models folder before the catalog said
    how it applies to a stem (its card has no split, or another): then its card is brought up to date."""
    if entry.applies_to is None or folder.parent != root:
        return False
    card = read_card(folder)
    if (card.raw.get("catalog") or {}).get("id") != entry.id:
        return False
    return card.raw.get("split") != entry.applies_to.card_fields()["split"]


def apply_to_card(entry: CatalogEntry, folder: Path) -> ModelCard:
    """Write how ``entry`` applies to a stem into the card of its model installed in ``folder`` (an install from
    before the catalog said so): the weights stay as they are, nothing is downloaded. Raises ModelError when the
    model's stems are not those the catalog maps."""
    from .atomic import atomic_write_bytes

    assert entry.applies_to is not None
    card = read_card(folder)
    raw = dict(card.raw)
    stems = [s for group in (raw.get("outputs") or {}).values() for s in group] or list(card.sources)
    problem = entry.applies_to.mismatch(stems)
    if problem:
        raise ModelError(
            f"{entry.id} is installed ({folder}), but {problem}. Remove it (stemdesk models remove {entry.id}) and "
            "install it again."
        )
    raw.update(entry.applies_to.card_fields())
    atomic_write_bytes(folder / "card.json", (json.dumps(raw, indent=2) + "\n").encode("utf-8"))
    return read_card(folder)
