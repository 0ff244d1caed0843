"""``python -m diffusemix``: see :mod:`diffusemix.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
