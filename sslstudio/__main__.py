"""``python -m sslstudio``: the same as the ``sslstudio`` command."""

import multiprocessing
import sys

from sslstudio.cli.main import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # frozen builds start data-loader workers through here
    sys.exit(main())
