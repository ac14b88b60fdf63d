#!/bin/sh
# Remove what install.sh installed. Your settings, models you installed or trained, and logs stay (paths printed).
set -eu
prefix=${STEMDESK_PREFIX:-$HOME/.local}
rm -rf "$prefix/opt/StemDesk" "$prefix/opt/StemDesk.new"
rm -f "$prefix/bin/stemdesk" "$prefix/share/applications/stemdesk.desktop" \
      "$prefix/share/icons/hicolor/256x256/apps/stemdesk.png"
command -v update-desktop-database >/dev/null && update-desktop-database "$prefix/share/applications" || true
echo "StemDesk is uninstalled. Kept: ~/.config/stemdesk (settings), ~/.local/share/stemdesk (your models),"
echo "~/.local/state/stemdesk (logs, autosaves). Delete them too for a clean slate."
