# Sourced by ./run-tests.sh and lab/run-tests.sh: a home, XDG folders and a temporary folder of the tests' own,
# removed when the script exits, so nothing is installed, cached, logged or left in the real ones. Downloads worth
# keeping between runs go to the clone's .test-cache/ (git-ignored). Sets $run, the folder that holds them all.
run=$(mktemp -d "${TMPDIR:-/tmp}/stemdesk-tests.XXXXXX")
trap 'rm -rf "$run"' EXIT
export HOME=$run/home TMPDIR=$run/tmp
export XDG_DATA_HOME=$HOME/.local/share XDG_CONFIG_HOME=$HOME/.config XDG_CACHE_HOME=$HOME/.cache
export XDG_STATE_HOME=$HOME/.local/state XDG_RUNTIME_DIR=$run/runtime
mkdir -p "$HOME" "$TMPDIR" "$XDG_RUNTIME_DIR"
chmod 0700 "$XDG_RUNTIME_DIR"
export STEMDESK_TEST_CACHE=$PWD/.test-cache
