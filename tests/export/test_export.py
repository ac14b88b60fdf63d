"""Writing stems: Σ stems equals the mixture in the written format, and nothing partial is ever left behind."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from helpers import song

from stemdesk.core.errors import AudioError
from stemdesk.export.nullcheck import null_residual
from stemdesk.export.stems import StemsWriter, integer_stems
from stemdesk.io.audio import AtomicAudioWriter
from stemdesk.io.formats import OutputFormat, quantise


@pytest.mark.parametrize("bits", [16, 24])
def test_quantise_inverts_libsndfile_reading(tmp_path, bits):
    ints = np.array([-(1 << (bits - 1)), -1, 0, 1, (1 << (bits - 1)) - 1], dtype=np.int64)
    path = tmp_path / "x.wav"
    sf.write(str(path), (ints << (32 - bits)).astype(np.int32), 44100, subtype=f"PCM_{bits}")
    floats, _ = sf.read(str(path), dtype="float32")
    assert np.array_equal(quantise(floats, bits), ints)


@pytest.mark.parametrize("bits", [16, 24])
def test_integer_residual_is_exact_and_in_range_even_at_full_scale(bits):
    rng = np.random.default_rng(0)
    mix = rng.uniform(-1, 1, size=(2, 5000))
    mix[:, :100] = 1.0  # clipped mixture
    mix[:, 100:200] = -1.0
    stems = rng.uniform(-1.5, 1.5, size=(4, 2, 5000))  # stems that overshoot: the residual must be moved
    stems[:3, :, :300] = -1.0  # the last stem alone would need 4 × full scale
    q = integer_stems(stems, mix, bits)
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    assert q.min() >= low and q.max() <= high
    assert np.array_equal(q.sum(0), quantise(mix, bits))


FORMATS = [
    ("wav", "16"),
    ("wav", "24"),
    ("wav", "32f"),
    ("flac", "16"),
    ("flac", "24"),
    ("aiff", "16"),
    ("aiff", "24"),
    ("aiff", "32f"),
    ("mp3", None),
    ("ogg", None),
]


@pytest.mark.parametrize("name, depth", FORMATS)
@pytest.mark.parametrize("rate", [44100, 48000])
def test_every_format_nulls_within_its_tolerance(tmp_path, name, depth, rate):
    fmt = OutputFormat.parse(name, depth)
    mix = song(2.0, rate).T.astype(np.float64)
    mix_path = tmp_path / "mix.wav"
    sf.write(str(mix_path), mix.T, rate, subtype="PCM_24")
    mix, _ = sf.read(str(mix_path), dtype="float32", always_2d=True)
    mix = mix.T
    rng = np.random.default_rng(1)
    if fmt.depth == "lossy":  # a codec needs stems that sound like music: a split that drifts slowly
        anchors = rng.dirichlet(np.ones(4), size=5).T
        weights = np.stack([np.interp(np.arange(mix.shape[1]), np.linspace(0, mix.shape[1], 5), a) for a in anchors])
        weights = weights[:, None, :]
    else:  # the hardest case for rounding: a different split every sample
        weights = rng.dirichlet(np.ones(4), size=mix.shape[1]).T[:, None, :]
    stems = (weights * mix[None]).astype(np.float32)
    with StemsWriter(tmp_path / "stems", ["vocals", "drums", "bass", "other"], rate, 2, fmt) as writer:
        for start in range(0, mix.shape[1], 30000):  # streamed in blocks, as the separation does
            writer.write(stems[..., start : start + 30000], mix[:, start : start + 30000])
        paths = writer.commit()
    assert [p.name for p in paths] == [f"{s}.{fmt.extension}" for s in ("vocals", "drums", "bass", "other")]
    for path in paths:
        info = sf.info(str(path))
        assert info.samplerate == rate and info.frames == mix.shape[1] and info.channels == 2
    result = null_residual(mix_path, paths)
    assert result.passed, result
    if fmt.bits:
        assert result.bit_exact and result.max_abs == 0.0
    elif depth == "32f":
        assert result.peak_dbfs is None or result.peak_dbfs <= -138
    assert not list((tmp_path / "stems").glob(".*part*"))


def test_nullcheck_fails_for_stems_that_do_not_belong(tmp_path, song_file):
    mix_path = song_file("mix.wav", subtype="PCM_16")
    mix, rate = sf.read(str(mix_path), dtype="float32")
    half = tmp_path / "half.wav"
    sf.write(str(half), mix * 0.5, rate, subtype="PCM_16")
    result = null_residual(mix_path, [half])
    assert not result.passed and not result.bit_exact
    assert result.peak_dbfs > -20


def test_nullcheck_finds_one_wrong_sample_late_in_a_long_file(tmp_path):
    rate = 44100
    rng = np.random.default_rng(3)
    mix = rng.integers(-8000, 8000, size=(15 * rate, 2)).astype(np.int16)  # 15 s: the check reads three blocks
    low = (mix // 2).astype(np.int16)
    high = (mix - low).astype(np.int16)
    high[int(12.3 * rate), 1] += 1  # one LSB off, at 12.3 s
    for name, audio in (("mix", mix), ("low", low), ("high", high)):
        sf.write(str(tmp_path / f"{name}.wav"), audio, rate, subtype="PCM_16")
    result = null_residual(tmp_path / "mix.wav", [tmp_path / "low.wav", tmp_path / "high.wav"])
    assert not result.bit_exact and not result.passed
    assert result.max_abs == 1 / 32768
    assert [r["start_seconds"] for r in result.worst_regions] == [12.0]


def test_nullcheck_rejects_misaligned_files(tmp_path, song_file):
    mix_path = song_file("mix.wav", seconds=2.0)
    other = song_file("other.wav", seconds=1.0)
    with pytest.raises(AudioError, match="sample-aligned"):
        null_residual(mix_path, [other])


def test_failed_write_leaves_neither_partial_nor_final_file(tmp_path):
    target = tmp_path / "out" / "vocals.wav"
    with pytest.raises(RuntimeError, match="boom"):
        with AtomicAudioWriter(target, 44100, 2, "WAV", "PCM_16") as writer:
            writer.write(np.zeros((2, 1000), dtype=np.int16))
            raise RuntimeError("boom")
    assert list((tmp_path / "out").iterdir()) == []


def test_an_existing_file_survives_a_failed_rewrite(tmp_path):
    target = tmp_path / "vocals.wav"
    sf.write(str(target), np.ones((10, 2), dtype=np.float32) * 0.5, 44100)
    before = target.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with AtomicAudioWriter(target, 44100, 2, "WAV", "PCM_16") as writer:
            writer.write(np.zeros((2, 1000), dtype=np.int16))
            raise KeyboardInterrupt
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["vocals.wav"]


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("layout", ["channels first", "interleaved", "a slice"])
def test_blocks_of_any_layout_are_written_sample_for_sample(tmp_path, channels, layout):
    """The writer interleaves (channels, n) blocks itself: whether they are rows, a transposed interleaved array or
    a slice of a bigger one, the file holds each channel's samples in order."""
    rng = np.random.default_rng(channels)
    ints = rng.integers(-32768, 32767, (channels, 5000), dtype=np.int16)
    block = {
        "channels first": ints,
        "interleaved": np.ascontiguousarray(ints.T).T,
        "a slice": np.repeat(ints, 2, axis=1)[:, ::2],
    }[layout]
    with AtomicAudioWriter(tmp_path / "x.wav", 44100, channels, "WAV", "PCM_16") as writer:
        writer.write(block[:, :1234])
        writer.write(block[:, 1234:])
        writer.commit()
    back, _ = sf.read(str(tmp_path / "x.wav"), dtype="int16", always_2d=True)
    assert np.array_equal(back.T, ints)


def test_long_ogg_is_written_in_blocks(tmp_path):
    """libsndfile crashes encoding ≥ 60 s of Vorbis in one call; the writer must split it."""
    audio = (np.random.default_rng(0).standard_normal((2, 44100 * 70)) * 0.1).astype(np.float32)
    with AtomicAudioWriter(tmp_path / "long.ogg", 44100, 2, "OGG", "VORBIS") as writer:
        writer.write(audio)
        writer.commit()
    assert sf.info(str(tmp_path / "long.ogg")).frames == audio.shape[1]


@pytest.mark.parametrize(
    "name, depth, message",
    [("flac", "32f", "cannot be written"), ("mp3", "16", "lossy"), ("m4a", None, "Unknown output format")],
)
def test_impossible_formats_are_refused(name, depth, message):
    with pytest.raises(AudioError, match=message):
        OutputFormat.parse(name, depth)


def test_in_memory_float_stems_add_up_exactly_in_any_order():
    """`exact_float_stems`: float32 audio and audio from 16/24-bit PCM are split into float64 stems whose sum, in any
    order, is the audio bit for bit, also where the stems are far louder than the mix (they cancel); each stem moves
    by at most 2^-48 of the loudest stem at that sample."""
    from stemdesk.export.stems import exact_float_stems

    rng = np.random.default_rng(7)
    n = 50_000
    for mix in (
        (rng.standard_normal((2, n)) * 0.2).astype(np.float32),
        rng.integers(-(1 << 23), 1 << 23, (2, n)) / float(1 << 23),  # 24-bit samples as float64
    ):
        loud = rng.standard_normal((3, 2, n)) * 0.5  # three stems that mostly cancel in the fourth
        stems = np.concatenate([loud, (mix - loud.sum(axis=0))[None]])
        exact = exact_float_stems(stems, mix)
        loudest = np.maximum(np.abs(stems).max(axis=0), np.abs(mix))
        assert exact.dtype == np.float64 and (np.abs(exact - stems) <= 2.0**-48 * loudest).all()
        for order in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
            assert np.array_equal(sum(exact[i] for i in order), mix)
        assert np.array_equal(exact.sum(axis=0), mix)
