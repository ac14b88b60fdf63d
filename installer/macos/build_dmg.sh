#!/usr/bin/env bash
# macOS: build StemDesk.app and a .dmg. NOT BUILT OR TESTED HERE (no Mac): kept correct by review.
# Needs Xcode command line tools. stemdesk.icns from installer/stemdesk.svg, for example:
#   mkdir stemdesk.iconset && for s in 16 32 64 128 256 512; do
#     rsvg-convert -w $s -h $s ../stemdesk.svg > stemdesk.iconset/icon_${s}x${s}.png; done && iconutil -c icns stemdesk.iconset
# Unsigned builds open with right-click → Open the first time; sign and notarise with your Developer ID for release:
#   codesign --deep --force --options runtime --sign "Developer ID Application: ..." dist/StemDesk.app
#   xcrun notarytool submit StemDesk.dmg --keychain-profile ... --wait && xcrun stapler staple StemDesk.dmg
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh
.venv/bin/python -m pip install --quiet "pyinstaller==6.22.3"
version=$(.venv/bin/python -c "import stemdesk; print(stemdesk.__version__)")
STEMDESK_VERSION=$version .venv/bin/pyinstaller --noconfirm --clean installer/stemdesk.spec
# the CLI inside the app: /Applications/StemDesk.app/Contents/MacOS/stemdesk separate ...
hdiutil create -volname "StemDesk $version" -srcfolder dist/StemDesk.app -ov -format UDZO "dist/StemDesk-$version.dmg"
echo "dist/StemDesk-$version.dmg"
