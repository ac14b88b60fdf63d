"""The session layer under both front ends, without Qt: the workspace (the open song, its stems, the project and the
one mix), the tasks the command line and the app both run, the project file format, and a front end's decisions
(job bookkeeping, watching the stems' files, crash recovery, recent files, the MIDI link), which announce what
changed through plain observer lists (`events.Announcement`)."""
