#!/usr/bin/env bash
# Install StemDesk (first run only) and separate songs with the default model into ./stems/.
#   ./stemdesk.sh                     separate a demo song (fetched from Debian's archive, or synthesised)
#   ./stemdesk.sh song.mp3 other.wav  separate your own songs
# Any `stemdesk separate` option can follow the files, e.g. --format flac --bit-depth 16.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
cd - >/dev/null
"$here/scripts/setup.sh"
if (($# == 0)); then
    exec "$here/.venv/bin/stemdesk" demo
fi
exec "$here/.venv/bin/stemdesk" separate "$@"
