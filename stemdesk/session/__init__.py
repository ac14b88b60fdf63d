"""The session layer under both front ends, without Qt: the workspace (the open song, its stems, the project and the
one mix), the tasks the command line and the app both run, and the project file format."""
