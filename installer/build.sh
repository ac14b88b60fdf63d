#!/usr/bin/env bash
# Build the Linux desktop bundle with PyInstaller, then package it for users:
#   build/installer/dist/StemDesk/                          the one-folder app (GUI and CLI in one executable)
#   build/installer/StemDesk-<version>-linux-x86_64.tar.gz  the app + install.sh + uninstall.sh + menu entry + icon
# Size and build time go to build/installer/report.json. Run installer/smoke_test.sh on the result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m pip install --quiet --disable-pip-version-check "pyinstaller==6.22.3" 2>&1 \
    | grep -v "^WARNING: Location" || true
out=build/installer
version=$(.venv/bin/python -c "import stemdesk; print(stemdesk.__version__)")
started=$(date +%s)
# PyInstaller's analysis imports torch._inductor, which makes its cache folder in /tmp: keep it in the build folder
export TORCHINDUCTOR_CACHE_DIR=$PWD/$out/work/torchinductor
export MPLCONFIGDIR=$PWD/$out/work/matplotlib  # PyInstaller's matplotlib hook imports it: not in ~/.config
PYTHONWARNINGS=ignore::DeprecationWarning .venv/bin/pyinstaller --noconfirm --clean --log-level ERROR --distpath "$out/dist" --workpath "$out/work" \
    installer/stemdesk.spec
built=$(date +%s)

stage="$out/StemDesk-$version"
rm -rf "$stage"
mkdir -p "$stage"
cp -a "$out/dist/StemDesk" "$stage/StemDesk"
cp installer/install.sh installer/uninstall.sh installer/stemdesk.desktop "$stage/"
QT_QPA_PLATFORM=offscreen .venv/bin/python - "$stage/stemdesk.png" <<'PY'
import sys
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer
app = QGuiApplication([])
image = QImage(256, 256, QImage.Format.Format_ARGB32)
image.fill(Qt.GlobalColor.transparent)
painter = QPainter(image)
QSvgRenderer("installer/stemdesk.svg").render(painter)
painter.end()
assert image.save(sys.argv[1])
PY
tarball="$out/StemDesk-$version-linux-x86_64.tar.gz"
tar -C "$out" -czf "$tarball" "StemDesk-$version"
rm -rf "$stage"
finished=$(date +%s)
.venv/bin/python - "$out" "$tarball" $((built - started)) $((finished - built)) <<'PY'
import json, sys
from pathlib import Path
out, tarball, build_s, pack_s = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
bundle = out / "dist" / "StemDesk"
files = [p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()]   # symlinks cost nothing
size = sum(p.stat().st_size for p in files)
biggest = sorted(((p.stat().st_size, str(p.relative_to(bundle))) for p in files), reverse=True)[:12]
report = {"bundle_mb": round(size / 2**20, 1), "tarball_mb": round(tarball.stat().st_size / 2**20, 1),
          "pyinstaller_seconds": build_s, "package_seconds": pack_s,
          "largest_files_mb": {name: round(s / 2**20, 1) for s, name in biggest}}
(out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps(report, indent=2))
PY
echo "Built $tarball"
