"""The desktop app (PySide6): views and wiring over the session layer; the only package that imports Qt."""
