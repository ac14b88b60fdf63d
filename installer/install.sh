#!/bin/sh
# Install StemDesk for this user, without root: the app in ~/.local/opt/StemDesk, the command ~/.local/bin/stemdesk,
# a menu entry and an icon. Run it from the unpacked tarball. STEMDESK_PREFIX overrides ~/.local.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=${STEMDESK_PREFIX:-$HOME/.local}
dest="$prefix/opt/StemDesk"
mkdir -p "$prefix/opt" "$prefix/bin" "$prefix/share/applications" "$prefix/share/icons/hicolor/256x256/apps"
rm -rf "$dest.new"
cp -a "$here/StemDesk" "$dest.new"          # copy first, then swap: an interrupted install leaves the old one
rm -rf "$dest"
mv "$dest.new" "$dest"
ln -sf "$dest/stemdesk" "$prefix/bin/stemdesk"
cp "$here/stemdesk.png" "$prefix/share/icons/hicolor/256x256/apps/stemdesk.png"
sed "s|@EXEC@|$dest/stemdesk|" "$here/stemdesk.desktop" > "$prefix/share/applications/stemdesk.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database "$prefix/share/applications" || true
echo "StemDesk is installed. Start it from your applications menu, or run: $prefix/bin/stemdesk"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "(add $prefix/bin to your PATH to type just 'stemdesk')";; esac
