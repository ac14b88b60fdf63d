"""Everything that touches the file system: audio in and out (the only home of soundfile), models, settings,
platform folders, atomic writes and child processes."""
