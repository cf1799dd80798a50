"""``python -m pytest_oompa.cli``: the ``oompa`` command without its console script."""

from __future__ import annotations

import sys

from pytest_oompa.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
