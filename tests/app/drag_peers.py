"""The two programs of the drag-out test, each a process of its own on the test's X server:

python drag_peers.py source SONG OUTPUT_FOLDER   the app with SONG separated, a span selected; prints where its
                                                 lanes are on the screen (one JSON line), then runs
python drag_peers.py target RECEIVED.txt         a window that accepts dropped files, like a DAW's track list or
                                                 a file manager; prints where it is, and writes each drop's file
                                                 paths to RECEIVED.txt
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def source(song: str, output: str) -> None:
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QApplication

    from stemdesk.app.timeline import HEADER
    from stemdesk.app.window import MainWindow
    from stemdesk.io import settings as settings_store

    app = QApplication(sys.argv)
    values = dict(settings_store.DEFAULTS, output_folder=output, threads=1, model="tiny-4stem", bit_depth="16")
    window = MainWindow(values, ask=False)
    window.setGeometry(0, 0, 900, 700)
    window.show()
    window.model_box.setCurrentText("tiny-4stem")
    window.open_song(Path(song))
    done = []
    window.separation_finished.connect(done.append)
    window.separate()
    while not done or any(lane.busy for lane in window.timeline.canvas.lanes):
        app.processEvents()
    canvas = window.timeline.canvas
    canvas.selection = (1.0, 2.0)
    canvas.update()
    app.processEvents()

    def at(name: str, x: float, y: int) -> list[int]:
        point = canvas.mapToGlobal(QPoint(int(x), canvas.lane_top(name) + y))
        return [point.x(), point.y()]

    where = {
        "header": at("vocals", HEADER - 30, 14),  # on the lane's name, clear of its mute, solo and gain
        "selection": at("drums", (canvas.x_of(1.0) + canvas.x_of(2.0)) / 2, canvas.lane_height() // 2),
        "stems": {name: str(path) for name, path in window.workspace.stems.items()},
    }
    print(json.dumps(where), flush=True)
    app.exec()


def target(received: str) -> None:
    from PySide6.QtWidgets import QApplication, QLabel

    class Drop(QLabel):
        def dragEnterEvent(self, event) -> None:
            if event.mimeData().hasUrls():
                event.acceptProposedAction()

        def dragMoveEvent(self, event) -> None:
            event.acceptProposedAction()

        def dropEvent(self, event) -> None:
            paths = [url.toLocalFile() for url in event.mimeData().urls()]
            with open(received, "a", encoding="utf-8") as out:
                out.write("\n".join(paths) + "\n")
            event.acceptProposedAction()

    app = QApplication(sys.argv)
    window = Drop("drop files here")
    window.setAcceptDrops(True)
    window.setGeometry(950, 100, 300, 300)
    window.show()
    app.processEvents()
    centre = window.mapToGlobal(window.rect().center())
    print(json.dumps({"centre": [centre.x(), centre.y()]}), flush=True)
    app.exec()


if __name__ == "__main__":
    {"source": source, "target": target}[sys.argv[1]](*sys.argv[2:])
