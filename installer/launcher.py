"""The bundled executable: the `stemdesk` command (with no arguments, the desktop app).

`stemdesk --vst3-scan PLUGIN` is the child process that loads a VST3 plugin in isolation (see
stemdesk.mixer.vst3); in a frozen app there is no `python -m` to run it with.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if len(sys.argv) == 3 and sys.argv[1] == "--vst3-scan":
        from stemdesk.mixer.vst3 import main as scan

        sys.exit(scan(sys.argv[2:]))
    from stemdesk.cli import main

    sys.exit(main())
