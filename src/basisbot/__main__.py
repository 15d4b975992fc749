"""`python -m basisbot ...`: the same command line as the `basisbot` script."""

import sys

from basisbot.cli import main

if __name__ == "__main__":
    sys.exit(main())
