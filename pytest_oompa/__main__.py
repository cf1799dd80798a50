"""``python -m pytest_oompa COMMAND``: tools around swarm runs that need no pytest session.

Each command lives in its own module, imported only when it is used.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "runs": ("pytest_oompa.runs.reader", "main_runs", "list the runs in a runs folder"),
    "show": ("pytest_oompa.runs.reader", "main_show", "show one run's workers and iterations"),
    "report": ("pytest_oompa.report.cli", "main", "write a run's self-contained HTML report"),
    "fake-api": (
        "pytest_oompa.offline.fake_api_command",
        "main",
        "serve the loopback fake model API",
    ),
}


def usage() -> str:
    lines = ["usage: python -m pytest_oompa COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    entry = COMMANDS.get(args[0])
    if entry is None:
        print(f"unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, function, _ = entry
    run = getattr(importlib.import_module(module), function)
    return int(run(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
