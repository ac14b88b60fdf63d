"""`stemdesk karaoke`: a song and its lyrics in, a karaoke track out, as every front end makes it.

The job, in order: the song's stems (separated into ``OUTDIR/<song>/``, or the ones already there when its
certificate says they were made from this song; the vocals split into lead and backing when the backing vocals are
kept), the lyrics aligned word by word on the lead vocal (`stemdesk.karaoke.align`), each line's singer (the backing
part where the split says the backing voices carry it), the karaoke mix rendered from the stems (the vocals muted, or
only the lead with ``keep_backing``; the lead at ``guide_vocal_db`` as a quiet guide; ``key`` semitones through the
mixer's key change), then the files karaoke players read, written beside the stems: an enhanced LRC and an ASS file
always, an MP4 with the words wiping in time, CD+G with its MP3 and an UltraStar song when asked. The stems folder's
certificate lists them with the mix they were rendered from; a mix that keeps the song's key nulls against the song
with the stems it leaves out, as every render does.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.cancel import CancelToken
from ..core.errors import StemDeskError
from ..io.atomic import atomic_write_bytes
from ..io.audio import AudioInfo, iter_blocks, probe
from ..io.formats import OutputFormat
from ..io.model_store import DEFAULT_MODEL, sha256_file
from ..io.stems import CERTIFICATE, find_stems, read_certificate
from ..jobs.separate import separate_options
from ..karaoke.model import Lyrics
from ..mixer.mix import Mix, preset
from .tasks import Engines, Progress, Task, bounce, refuse_replacing, separate, split_cautions, split_stem, stems_of

LEAD_SPLIT = "stemdesk-vocals-leadback"  # the split model that gives the lead vocal apart from the backing vocals
ALIGN_RATE = 22050  # the rate the lead vocal is read at for the aligner: its words, not its top octave, matter
BACKING_DB = 3.0  # a line is the backing part's where the backing vocals stand this much above the lead there
LEAD_STEMS = ("vocals/lead", "vocals")  # what the words are aligned on: the lead vocal where split, else the vocals
UNSURE = 0.5  # a line whose alignment confidence is below this is listed as unsure


@dataclass
class KaraokeRequest:
    """What `stemdesk karaoke` asks for. ``lyrics``: a text, LRC or ASS file. ``lead``: a stem of the song's stems
    folder to align on instead of the lead vocal ("vocals/lead", "vocals" or a path)."""

    song: Path
    lyrics: Path
    outdir: Path
    model: str = DEFAULT_MODEL
    video: bool = False
    resolution: int = 1080
    cdg: bool = False
    ultrastar: bool = False
    key: float = 0.0
    guide_vocal_db: float | None = None
    keep_backing: bool = False
    split_model: str = LEAD_SPLIT
    language: str | None = None
    lead: str | None = None
    threads: int | None = None
    device: str = "auto"
    overwrite: bool = False


@dataclass
class KaraokeResult:
    """What the job made: the stems folder, the aligned lyrics, the karaoke mix, every file written by kind, the
    lines the aligner was unsure of (1-based, as a user counts them) and whether the stems were there already."""

    folder: Path
    lyrics: Lyrics
    mix: Path
    files: dict[str, Path] = field(default_factory=dict)
    unsure: list[int] = field(default_factory=list)
    reused_stems: bool = False
    aligned_on: str = "vocals"
    caution: str | None = None  # the lead/backing split's own caution, where the backing vocals were kept
    clipped: int = 0  # samples of the karaoke mix held at full scale (without the vocals it can exceed it)


def karaoke(request: KaraokeRequest, engines: Engines | None = None) -> Task[KaraokeResult]:
    """The whole job as a task (progress events: {"message": ...}, with "fraction" where a step has one)."""
    engines = engines or Engines()

    def work(progress: Progress, cancel: CancelToken) -> KaraokeResult:
        return _make(request, engines, progress, cancel)

    return Task(f"Karaoke of {Path(request.song).name}", work, "cpu", request.model)


def _make(request: KaraokeRequest, engines: Engines, progress: Progress, cancel: CancelToken) -> KaraokeResult:
    from ..karaoke.lyrics import read_lyrics

    song = Path(request.song)
    lyrics = read_lyrics(Path(request.lyrics))  # bad lyrics are said before any separation
    folder = Path(request.outdir) / song.stem
    reused = _stems(request, engines, song, folder, progress, cancel)
    leaves = dict(find_stems(folder).leaves())
    if request.keep_backing and "vocals/lead" not in leaves:
        raise StemDeskError(f'The stems in "{folder}" have no lead vocal apart from the backing vocals.')
    lead_name, lead_path = _lead(request, leaves)
    notes = _notes(lead_path, request.device) if request.ultrastar else None
    timed = align_lyrics(lyrics, lead_path, lead_name, request.language, notes=notes).run(progress, cancel)
    timed.title = timed.title or song.stem
    if "vocals/backing" in leaves and "vocals/lead" in leaves:
        mark_backing(timed, leaves["vocals/lead"], leaves["vocals/backing"])
    cancel.raise_if_cancelled()
    mix = karaoke_mix(list(leaves), request.keep_backing, request.guide_vocal_db, request.key)
    mix_path = folder / f"{song.stem} karaoke.wav"
    progress({"message": "rendering the karaoke mix"})
    mixture = song if request.key == 0 else None  # a mix in another key cannot null against the song
    rendered = bounce(folder, mix, mix_path, OutputFormat.parse("wav", "24"), mixture, kind="karaoke")
    clipped = rendered.run(progress, cancel).clipped
    formats = {"lrc", "ass"} | {kind for kind, asked in
                                (("mp4", request.video), ("cdg", request.cdg), ("ultrastar", request.ultrastar)) if asked}  # fmt: skip
    files = write_karaoke(
        timed, folder, song, mix_path, formats, request.resolution, request.language, lead_path, progress, cancel
    )
    unsure = unsure_lines(timed)
    certify_karaoke(folder, mix, mix_path, files, lead_name, unsure, Path(request.lyrics),
                    {"keep_backing": request.keep_backing, "guide_vocal_db": request.guide_vocal_db,
                     "key_semitones": request.key})  # fmt: skip
    caution = split_cautions(folder).get("vocals") if request.keep_backing else None
    return KaraokeResult(folder, timed, mix_path, files, unsure, reused, lead_name, caution, clipped)


def unsure_lines(lyrics: Lyrics) -> list[int]:
    """The lines (1-based, as a user counts them) whose alignment confidence is below `UNSURE`."""
    return [i + 1 for i, line in enumerate(lyrics.lines) if line.confidence is not None and line.confidence < UNSURE]


def align_lyrics(
    lyrics: Lyrics,
    lead: Path,
    name: str = "vocals",
    language: str | None = None,
    offset: float = 0.0,
    notes: list | None = None,
) -> Task[Lyrics]:
    """The lyrics placed word by word on the vocal file ``lead`` (``name``: what it is, for messages), which starts
    ``offset`` seconds into the song (an excerpt's stems): the task the command line and the app's Align run."""

    def work(progress: Progress, cancel: CancelToken) -> Lyrics:
        from ..karaoke.align import align

        progress({"message": f"aligning the lyrics on {name}"})
        vocal, rate = _mono(probe(lead), cancel)

        def report(event: dict) -> None:
            cancel.raise_if_cancelled()
            fraction = float(event.get("fraction", 0.0))
            progress({"done": fraction, "total": 1.0, "message": f"aligning the lyrics on {name}"})

        timed = align(lyrics, vocal, rate, language=language or lyrics.language, notes=notes, progress=report)
        return shifted(timed, offset) if offset else timed

    return Task(f"Align the lyrics on {name}", work, "cpu")


def shifted(lyrics: Lyrics, seconds: float) -> Lyrics:
    """The lyrics with every time ``seconds`` later."""
    moved = copy.deepcopy(lyrics)
    later = lambda time: None if time is None else time + seconds  # noqa: E731
    for word in moved.words:
        word.start, word.end = later(word.start), later(word.end)
        for syllable in word.syllables:
            syllable.start, syllable.end = later(syllable.start), later(syllable.end)
    return moved


def _stems(
    request: KaraokeRequest, engines: Engines, song: Path, folder: Path, progress: Progress, cancel: CancelToken
) -> bool:
    """Separate ``song`` into ``folder`` unless its stems are there already (True then); split the vocals into lead
    and backing when the backing vocals are kept and they are not split yet."""
    splits = {"vocals": request.split_model} if request.keep_backing else None
    if stems_of(folder, song) and not request.overwrite:
        names = [name for name, _ in find_stems(folder).leaves()]
        if request.keep_backing and "vocals/lead" not in names:
            progress({"message": f"splitting the vocals with {request.split_model}"})
            options = separate_options(model=request.split_model, device=request.device)
            split_stem(engines, folder, "vocals", song, options, request.threads).run(progress, cancel)
        return True
    refuse_replacing([folder], request.overwrite)
    options = separate_options(model=request.model, device=request.device, split=splits)
    progress({"message": f"separating {song.name}"})
    separate(engines, song, folder, options, threads=request.threads, overwrite=request.overwrite).run(progress, cancel)
    return False


def default_lead(leaves: dict[str, Path]) -> tuple[str, Path] | None:
    """The stem the words are aligned on unless the user names one: the first of `LEAD_STEMS` the stems have."""
    return next(((name, leaves[name]) for name in LEAD_STEMS if name in leaves), None)


def _lead(request: KaraokeRequest, leaves: dict[str, Path]) -> tuple[str, Path]:
    """The stem the words are aligned on: the user's, else the lead vocal, else the vocals."""
    if request.lead:
        if request.lead in leaves:
            return request.lead, leaves[request.lead]
        path = Path(request.lead)
        if path.is_file():
            return path.name, path
        raise StemDeskError(
            f"--lead {request.lead!r} is neither a stem of the song ({', '.join(leaves)}) nor a file. Name one of "
            "them, or give the path of a vocal file."
        )
    found = default_lead(leaves)
    if found is not None:
        return found
    raise StemDeskError(
        f"The stems ({', '.join(leaves)}) have no vocals to align the words on: separate the song with a model "
        "that gives vocals, or name the stem to align on with --lead."
    )


def _mono(info: AudioInfo, cancel: CancelToken | None = None) -> tuple[np.ndarray, int]:
    """The file as mono float32 (1, n) at ALIGN_RATE (or its own rate when lower), read block by block, so a
    2-hour file costs its mono copy at that rate, not its whole stereo decoding."""
    import torch

    from ..core.resample import resample_in_blocks

    rate = info.sample_rate
    blocks = []
    for block in iter_blocks(info):
        if cancel is not None:
            cancel.raise_if_cancelled()
        blocks.append(block.mean(axis=0, dtype=np.float32))
    mono = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    if rate > ALIGN_RATE and mono.size:
        mono = resample_in_blocks(torch.from_numpy(mono)[None], rate, ALIGN_RATE)[0].numpy()
        rate = ALIGN_RATE
    return mono[None].astype(np.float32, copy=False), rate


def _notes(lead: Path, device: str) -> list:
    """The lead vocal's notes (Basic Pitch, one voice), for the UltraStar song's pitches."""
    from ..io.audio import read
    from ..transcribe.pitched import BasicPitch

    audio, rate = read(lead)
    return BasicPitch(device=device).transcribe(audio, rate, voices=1)


def mark_backing(lyrics: Lyrics, lead: Path, backing: Path) -> None:
    """A line is sung by the backing part where the backing vocals stand BACKING_DB above the lead over it."""
    lead_audio, rate = _mono(probe(lead))
    backing_audio, _ = _mono(probe(backing))
    for line in lyrics.lines:
        if line.start is None or line.end is None or line.end <= line.start:
            continue
        span = slice(int(line.start * rate), int(line.end * rate))
        lead_power = float(np.mean(np.square(lead_audio[0, span], dtype=np.float64))) + 1e-12
        backing_power = float(np.mean(np.square(backing_audio[0, span], dtype=np.float64))) + 1e-12
        if 10 * np.log10(backing_power / lead_power) >= BACKING_DB:
            line.part = "backing"


def karaoke_mix(stems: list[str], keep_backing: bool, guide_vocal_db: float | None, key: float) -> Mix:
    """The karaoke mix of these stems: the vocals muted (``keep_backing``: the lead only), the lead (or the vocals)
    back at ``guide_vocal_db`` as a guide when given, in ``key`` semitones. Raises MixError as `preset` does."""
    mix = preset("karaoke-backing" if keep_backing else "karaoke", stems)
    if guide_vocal_db is not None:
        if guide_vocal_db > 0:
            raise StemDeskError(
                f"A guide vocal sits under the music: give its level in dB below the original (e.g. -12), not "
                f"{guide_vocal_db:g}."
            )
        guide = "vocals/lead" if keep_backing else "vocals"
        mix.channel(guide).mute = False
        mix.channel(guide).gain_db = guide_vocal_db
    if key:
        mix.set_control("master/semitones", key)
    return mix


KARAOKE_FORMATS = ("lrc", "ass", "mp4", "cdg", "ultrastar")


def write_karaoke(
    lyrics: Lyrics,
    folder: Path,
    song: Path,
    mix_path: Path,
    formats: set[str] | frozenset[str] = frozenset({"lrc", "ass"}),
    resolution: int = 1080,
    language: str | None = None,
    lead: Path | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Path]:
    """The karaoke files of timed ``lyrics`` over the karaoke mix ``mix_path``, named after ``song``, in ``folder``
    (``formats`` of `KARAOKE_FORMATS`; ``lead``: the lead vocal, which an UltraStar song carries as its vocals);
    each written whole or not at all. Returns them by kind (the CD+G's MP3 as "mp3")."""
    from ..karaoke.screen import check_timed

    unknown = sorted(set(formats) - set(KARAOKE_FORMATS))
    if unknown:
        raise StemDeskError(f"Karaoke files are {', '.join(KARAOKE_FORMATS)}, not {', '.join(unknown)}.")
    check_timed(lyrics)  # every word placed, before anything is written
    progress = progress or (lambda event: None)
    cancel = cancel or CancelToken()
    base = Path(folder) / song.stem
    title, artist = lyrics.title or song.stem, lyrics.artist
    width, height = (1280, 720) if resolution == 720 else (1920, 1080)
    files: dict[str, Path] = {}
    if "lrc" in formats:
        from ..karaoke.lrc import write_lrc

        length = probe(mix_path).seconds
        files["lrc"] = write_lrc(lyrics, base.with_suffix(".lrc"), title=title, artist=artist, length=length)
    if "ass" in formats:
        from ..karaoke.ass import write_ass

        files["ass"] = write_ass(lyrics, base.with_suffix(".ass"), width=width, height=height, title=title,
                                 artist=artist)  # fmt: skip
    if "ultrastar" in formats:
        cancel.raise_if_cancelled()
        files["ultrastar"] = _ultrastar(lyrics, Path(folder), song, mix_path, lead, title, artist, language)
    if "cdg" in formats:
        cancel.raise_if_cancelled()
        progress({"message": "writing CD+G"})
        from ..karaoke.cdg import write_cdg_mp3

        files["cdg"], files["mp3"] = write_cdg_mp3(lyrics, mix_path, base, title=title, artist=artist)
    if "mp4" in formats:
        cancel.raise_if_cancelled()
        progress({"message": "rendering the karaoke video"})
        from ..karaoke.video import render_video

        files["mp4"] = render_video(lyrics, mix_path, base.with_suffix(".mp4"), resolution=(width, height),
                                    title=title, artist=artist, progress=progress, cancel=cancel)  # fmt: skip
    return files


def _path(written: Path | None, expected: Path) -> Path:
    return Path(written) if written is not None else expected


def _ultrastar(
    lyrics: Lyrics,
    folder: Path,
    song: Path,
    mix_path: Path,
    lead: Path | None,
    title: str,
    artist: str,
    language: str | None,
) -> Path:
    """An UltraStar song folder (``ultrastar/``: its TXT and the audio it names, as UltraStar Deluxe and
    Performous find them: beside the TXT): the song, the karaoke mix as its instrumental, the lead as its vocals."""
    from ..io.audio import read, write
    from ..karaoke.ultrastar import write_ultrastar

    target = folder / "ultrastar"
    target.mkdir(exist_ok=True)
    ogg = OutputFormat.parse("ogg")
    names = {"song": f"{song.stem}.ogg", "instrumental": f"{song.stem} [instrumental].ogg",
             "vocals": f"{song.stem} [vocals].ogg"}  # fmt: skip
    sources = {"song": song, "instrumental": mix_path, "vocals": lead}
    for kind, source in sources.items():
        if source is not None:
            audio, rate = read(source)
            write(target / names[kind], audio, rate, ogg)
    path = target / f"{song.stem}.txt"
    written = write_ultrastar(
        lyrics,
        path,
        title=title,
        artist=artist,
        audio_file=names["song"],
        instrumental_file=names["instrumental"],
        vocals_file=names["vocals"] if lead is not None else None,
        language=language,
    )
    return _path(written, path)


def certify_karaoke(
    folder: Path,
    mix: Mix,
    mix_path: Path,
    files: dict[str, Path],
    aligned_on: str,
    unsure: list[int],
    lyrics_file: Path | None = None,
    settings: dict | None = None,
) -> None:
    """The stems folder's certificate gains a ``karaoke`` entry: the lyrics (their file, when they came from one),
    the stem they were aligned on, the mix and its render, every karaoke file with its checksum."""
    cert = read_certificate(folder)
    entry: dict = {
        "lyrics": {"file": lyrics_file.name, "sha256": sha256_file(lyrics_file)} if lyrics_file else None,
        "aligned_on": aligned_on,
        "unsure_lines": unsure,
        "mix": {"file": mix_path.name, "sha256": sha256_file(mix_path), "mix": mix.to_dict()},
        **(settings or {}),
        "files": [
            {"kind": kind, "file": _relative(path, folder), "sha256": sha256_file(path)} for kind, path in files.items()
        ],
    }
    cert["karaoke"] = entry
    atomic_write_bytes(folder / CERTIFICATE, (json.dumps(cert, indent=2) + "\n").encode("utf-8"))


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(folder).resolve()))
    except ValueError:
        return str(path)
