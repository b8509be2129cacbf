"""`python -m streams COMMAND ...`: the same entry point as `tracker COMMAND ...` (whose parser
holds the streaming commands kafka|post|worker|ticker|replay), usable without the console script."""

from __future__ import annotations

import sys

from tracker.cli import main

if __name__ == "__main__":
    sys.exit(main())
