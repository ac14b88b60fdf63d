"""`stemdesk karaoke SONG --lyrics TEXT`: the song separated (or its stems reused), its lyrics aligned word by word on
the lead vocal, and the karaoke files written beside the stems (`stemdesk.session.karaoke`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from .common import ProgressBar
from .options import add_device_option, add_model_option, add_outdir_options, add_threads_option


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "karaoke",
        help="a karaoke track: the lyrics aligned on the sung words, as LRC, ASS, MP4, CD+G or UltraStar",
        description="Separate SONG (or reuse the stems already in OUTDIR/<song name>), align the words of LYRICS on "
        "the lead vocal and write beside the stems the karaoke mix, an enhanced LRC and an ASS file (and with the "
        "options below a video, CD+G and an UltraStar song). LYRICS: your text (one sung line a line, a blank line "
        "between verses), or an LRC or ASS file whose timing is refined.",
    )
    parser.add_argument("song", type=Path, metavar="SONG", help="the song")
    parser.add_argument("--lyrics", type=Path, required=True, metavar="TEXT", help="the lyrics: .txt, .lrc or .ass")
    add_outdir_options(parser)
    add_model_option(parser)
    out = parser.add_argument_group("what is written (the LRC, the ASS file and the karaoke mix always)")
    out.add_argument("--video", action="store_true", help="a karaoke MP4: the words wiping in time over the mix")
    out.add_argument("--resolution", type=int, choices=(720, 1080), default=1080, help="the video's height")
    out.add_argument("--cdg", action="store_true", help="CD+G graphics with their MP3 (karaoke players and discs)")
    out.add_argument("--ultrastar", action="store_true", help="an UltraStar song: syllables on the lead's notes")
    singer = parser.add_argument_group("for the singer")
    singer.add_argument("--key", type=float, default=0.0, metavar="N", help="the mix N semitones up or down")
    singer.add_argument(
        "--guide-vocal", type=float, metavar="DB", help="keep the lead vocal at DB (e.g. -15) as a quiet guide"
    )
    singer.add_argument(
        "--keep-backing",
        action="store_true",
        help="keep the backing vocals (splits the vocals into lead and backing with --split-model)",
    )
    singer.add_argument("--split-model", default=None, help="the lead/backing split (default stemdesk-vocals-leadback)")
    parser.add_argument("--language", help="the lyrics' language (fr, es, de, en; default: from the text)")
    parser.add_argument("--lead", help="align on this stem (vocals, vocals/lead) or vocal file instead")
    add_device_option(parser)
    add_threads_option(parser)
    parser.set_defaults(handler=run_karaoke)


def run_karaoke(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..io.process import default_threads, tune_allocator
    from ..session import karaoke
    from ..session.tasks import Engines

    tune_allocator()
    request = karaoke.KaraokeRequest(
        song=args.song,
        lyrics=args.lyrics,
        outdir=args.outdir,
        model=args.model,
        video=args.video,
        resolution=args.resolution,
        cdg=args.cdg,
        ultrastar=args.ultrastar,
        key=args.key,
        guide_vocal_db=args.guide_vocal,
        keep_backing=args.keep_backing,
        split_model=args.split_model or karaoke.LEAD_SPLIT,
        language=args.language,
        lead=args.lead,
        threads=args.threads if args.threads is not None else default_threads(),
        device=args.device,
        overwrite=args.overwrite,
    )
    made = karaoke.karaoke(request, Engines(args.registry)).run(ProgressBar(args.song.name))
    words = sum(len(line.words) for line in made.lyrics.lines)
    reused = "the stems already there" if made.reused_stems else "the stems just separated"
    print(
        f"{made.folder}: {words} words on {len(made.lyrics.lines)} lines aligned on {made.aligned_on} "
        f"({reused}); karaoke mix {made.mix.name}",
        file=out,
    )
    for kind, path in made.files.items():
        print(f"  {kind}: {path}", file=out)
    if made.unsure:
        shown = ", ".join(str(n) for n in made.unsure[:12]) + (" …" if len(made.unsure) > 12 else "")
        print(
            f"  unsure: line{'s' if len(made.unsure) > 1 else ''} {shown} (check their timing; the app's Lyrics lane "
            "moves a word or a line, or taps it in while the song plays)",
            file=out,
        )
    if made.clipped:
        print(
            f"  warning: {made.clipped} samples of the karaoke mix clipped at full scale (without the vocals the "
            "music can peak higher than the song): lower the master gain in the app's mixer before Export karaoke…, "
            "or render it unclipped with stemdesk remix STEMS_DIR --preset karaoke --bit-depth 32f",
            file=out,
        )
    if made.caution:
        print(f"  the backing vocals come from the vocals' split. Caution: {made.caution}", file=out)
    return 0
