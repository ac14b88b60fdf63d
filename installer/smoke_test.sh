#!/usr/bin/env bash
# Smoke-test a built bundle the way a user gets it: unpack the tarball, install it into a scratch home, start the
# app offscreen until it logs "ready", then separate a generated song with the bundled CLI and check the null.
# Fails on import errors, missing Qt plugins or any traceback.   installer/smoke_test.sh [TARBALL]
set -euo pipefail
cd "$(dirname "$0")/.."
tarball=${1:-$(ls -t build/installer/StemDesk-*-linux-x86_64.tar.gz | head -1)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_DATA_HOME="$work/home/.local/share" \
       XDG_STATE_HOME="$work/home/.local/state" XDG_CACHE_HOME="$work/home/.cache"
mkdir -p "$HOME"
tar -C "$work" -xzf "$tarball"
"$work"/StemDesk-*/install.sh > "$work/install.log"
exe="$HOME/.local/opt/StemDesk/stemdesk"
fail() { echo "SMOKE TEST FAILED: $*" >&2; exit 1; }
bad='Traceback|ModuleNotFoundError|ImportError|Could not load the Qt platform plugin|could not find or load|Fatal Python'

# 1. The GUI starts (offscreen), logs "ready" and keeps running; first run writes probed settings.
QT_QPA_PLATFORM=offscreen "$exe" > "$work/gui.out" 2> "$work/gui.err" &
gui=$!
for _ in $(seq 1 120); do
    grep -q "ready" "$work/gui.out" 2>/dev/null && break
    kill -0 $gui 2>/dev/null || break
    sleep 0.5
done
grep -q "ready" "$work/gui.out" || { cat "$work/gui.err" >&2; fail "the app did not report ready"; }
sleep 2
kill -0 $gui 2>/dev/null || { cat "$work/gui.err" >&2; fail "the app exited after starting"; }
kill -TERM $gui                         # a desktop session ending: the app must close by itself
for _ in $(seq 1 40); do kill -0 $gui 2>/dev/null || break; sleep 0.25; done
if kill -0 $gui 2>/dev/null; then kill -9 $gui; fail "the app did not close on SIGTERM"; fi
wait $gui 2>/dev/null || true
! grep -E "$bad" "$work/gui.err" || fail "errors while starting the app"
grep -q '"device"' "$XDG_CONFIG_HOME/stemdesk/settings.json" || fail "first run wrote no settings"
echo "app: $(cat "$work/gui.out")"

# 2. The CLI from the same executable: separate a generated song, check the null, list models and plugins.
python3 - "$work/song.wav" <<'PY'
import math, random, struct, sys, wave
rate, seconds = 44100, 8
random.seed(0)
with wave.open(sys.argv[1], "wb") as out:
    out.setnchannels(2); out.setsampwidth(2); out.setframerate(rate)
    frames = bytearray()
    for i in range(rate * seconds):
        t = i / rate
        beat = random.uniform(-0.3, 0.3) if (t * 2) % 1 < 0.1 else 0.0
        tone = 0.25 * math.sin(2 * math.pi * 110 * t) + 0.15 * math.sin(2 * math.pi * 440 * t * (1 + 0.01 * math.sin(t)))
        for value in (tone + beat, 0.8 * tone + beat):
            frames += struct.pack("<h", int(max(-1, min(1, value)) * 32000))
    out.writeframes(bytes(frames))
PY
"$exe" separate "$work/song.wav" -o "$work/out" --bit-depth 16 > "$work/cli.out" 2> "$work/cli.err" \
    || { cat "$work/cli.err" >&2; fail "separate failed"; }
"$exe" nullcheck "$work/song.wav" "$work/out/song" > "$work/null.json" || fail "the stems do not null"
grep -q '"bit_exact": true' "$work/null.json" || fail "the stems are not bit-exact"
# Into files, then grep: `grep -q` in a pipe stops reading at its first match, and under pipefail the listing's
# broken pipe would fail the test once the listing outgrows one write.
"$exe" models > "$work/models.out" || fail "stemdesk models failed"
grep -q "^stemdesk-4stem (default)" "$work/models.out" || fail "the default model is missing"
"$exe" models available > "$work/available.out" || fail "stemdesk models available failed"
grep -q "mel-roformer" "$work/available.out" || fail "the model catalog is missing from the bundle"
# a karaoke track from the stems just written (reused): the aligner and the karaoke writers are in the bundle
printf 'la la la la\nsing it now\n\nthe last line here\n' > "$work/song.txt"
"$exe" karaoke "$work/song.wav" --lyrics "$work/song.txt" -o "$work/out" > "$work/karaoke.out" 2> "$work/karaoke.err" \
    || { cat "$work/karaoke.err" >&2; fail "karaoke failed"; }
[[ -s $work/out/song/song.lrc && -s $work/out/song/song.ass ]] || fail "karaoke wrote no LRC or ASS"
! grep -E "$bad" "$work/karaoke.err" || fail "errors in karaoke"
"$exe" plugins > "$work/plugins.out" || fail "stemdesk plugins failed"
grep -q "loudness (stemdesk-loudness): loaded" "$work/plugins.out" || fail "the first-party plugin did not load"
! grep -E "$bad" "$work/cli.err" || fail "errors in the CLI"
echo "cli: $(head -1 "$work/cli.out")"
# 3. MIDI from the stems (Basic Pitch's network, run in torch) and into a DAW session, when the basic-pitch
# wheel is at hand (the tests keep it in .test-cache/; installing it here must not need the network).
wheel=$(ls .test-cache/basic_pitch-*.whl 2>/dev/null | head -1 || true)
if [[ -n $wheel ]]; then
    "$exe" midi --install --wheel "$wheel" > "$work/midi-install.out" 2> "$work/midi.err" || fail "midi --install failed"
    "$exe" midi "$work/out/song" > "$work/midi.out" 2>> "$work/midi.err" || { cat "$work/midi.err" >&2; fail "midi failed"; }
    [[ -s $work/out/song/bass.mid && -s $work/out/song/song.mid ]] || fail "midi wrote no files"
    "$exe" export "$work/out/song" --session rpp,ardour -o "$work/daw/song" > /dev/null 2>> "$work/midi.err" \
        || fail "export failed"
    grep -q "<SOURCE MIDI" "$work/daw/song.rpp" || fail "the REAPER session has no MIDI tracks"
    ! grep -E "$bad" "$work/midi.err" || fail "errors in MIDI"
    echo "midi: $(head -1 "$work/midi.out")"
else
    echo "midi: not checked (no basic-pitch wheel in .test-cache/; the tests fetch it)"
fi
echo "null: $(cat "$work/null.json" | cut -c1-120)"
"$work"/StemDesk-*/uninstall.sh > /dev/null
[[ ! -e "$exe" ]] || fail "uninstall left the app behind"
echo "SMOKE TEST PASSED"
