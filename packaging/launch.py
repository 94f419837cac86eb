"""Entry point of the frozen app: PyInstaller analyses this file, not the package's __main__.

Absolute imports only (PyInstaller runs it as a top-level script, outside the package).
"""

import multiprocessing
import sys

from sslstudio.cli.main import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # spawned data-loader workers re-enter here in a frozen build
    sys.exit(main())
