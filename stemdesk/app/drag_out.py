"""Stems dragged out of the timeline into a DAW, a file manager or a desktop: a lane's header gives the stem's file
(written and certified), the selection on a lane gives that region of its stem, written sample-exact to
``<stems>/regions/<song> <stem> <start>-<end>.wav`` with its own certificate before the drag starts."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QDrag

from ..core.errors import StemDeskError
from ..export.regions import region_name, write_region
from ..session.workspace import Workspace
from .errors import words
from .front import Front
from .timeline import Canvas


class DragOut:
    """Listens to the ``canvas``'s `drag_out`: the file of the stem (or of the selected region of it) of the
    ``workspace``, handed to the drag as a file URL."""

    def __init__(self, front: Front, workspace: Workspace, canvas: Canvas):
        self.front, self.workspace, self.canvas = front, workspace, canvas
        self.last: QDrag | None = None  # the drag under way (or done), for a look at what it carried
        canvas.drag_out.connect(self.drag)

    def file_for(self, lane: str, kind: str) -> Path:
        """The file a drag of ``lane`` carries: the stem's own, or (``kind`` "region") the selected span of it, written
        now. Raises StemDeskError when there is nothing to drag."""
        work = self.workspace
        files = dict(work.lanes())
        if lane not in files or work.info is None or work.song is None or work.stems_dir is None:
            raise StemDeskError(f"There is no stem file for {lane!r} yet: separate the song first.")
        if kind == "stem":
            return files[lane]
        if self.canvas.selection is None:
            raise StemDeskError("Select a span on the timeline first, then drag from inside it.")
        rate = work.info.sample_rate
        first, last = self.canvas.selection
        start = int(round(first * rate)) - work.stems_offset
        end = int(round(last * rate)) - work.stems_offset
        out = work.stems_dir / "regions" / region_name(work.song.stem, lane, first, last)
        return write_region(files[lane], start, end, out, work.stems_offset)

    def drag(self, lane: str, kind: str) -> None:
        try:
            path = self.file_for(lane, kind)
        except (StemDeskError, OSError) as error:
            self.front.status(f"Nothing to drag: {words(error)}", 10000)
            return
        data = QMimeData()
        data.setUrls([QUrl.fromLocalFile(str(path))])
        data.setText(str(path))
        self.last = QDrag(self.canvas)
        self.last.setMimeData(data)
        self.front.status(f"Dragging {path.name}", 5000)
        self.last.exec(Qt.DropAction.CopyAction)
