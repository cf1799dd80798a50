"""``oompa COMMAND``: the command table and the dispatch (the ``oompa`` console script).

One argparse subcommand per ``Command``; each module of this package supplies its own. The only
argument rule kept here is ``--``: what follows it goes to pytest, and only ``oompa run`` takes
it, so argparse never tries to read pytest's options as ours. Errors end here as one line: a
usage error with exit status 2, a filesystem error with 1, a closed pipe quietly.
"""

from __future__ import annotations

import os
import sys

from pytest_oompa import __version__
from pytest_oompa.cli.check import CHECK
from pytest_oompa.cli.cleanup import CLEANUP
from pytest_oompa.cli.command import USAGE_ERROR, Command, OompaParser, UsageError
from pytest_oompa.cli.run import RUN
from pytest_oompa.cli.runs import LIST, REPORT, VIEW
from pytest_oompa.cli.tasks import TASKS

__all__ = ["COMMANDS", "build_parser", "main"]

PROG = "oompa"
COMMANDS: tuple[Command, ...] = (RUN, LIST, VIEW, TASKS, CHECK, CLEANUP, REPORT)


def build_parser() -> OompaParser:
    parser = OompaParser(
        prog=PROG,
        description="Run coding-agent swarms as pytest sessions, and read what they left: "
        "upstream oompa's commands on top of pytest-oompa.",
        epilog=f"'{PROG} COMMAND --help' describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"pytest-oompa {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        sub = commands.add_parser(
            command.name, help=command.summary, description=command.description
        )
        command.configure(sub)
        sub.set_defaults(handler=command, command_parser=sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``oompa`` command; its exit status (2 for a usage error)."""
    args_in = sys.argv[1:] if argv is None else list(argv)
    extra: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, extra = args_in[:cut], args_in[cut + 1 :]
    parser = build_parser()
    args, unknown = parser.parse_known_args(args_in)
    command: Command | None = getattr(args, "handler", None)
    if command is None:
        parser.error("a command is required")
    # Reported by the command's own parser, so the message names the command.
    command_parser: OompaParser = args.command_parser
    if unknown:
        hint = " (pytest's options go after '--')" if command is RUN else ""
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    if extra and command is not RUN:
        command_parser.error(f"arguments after '--' are pytest's, for '{PROG} run' only")
    args.pytest_args = extra
    try:
        return command.run(args)
    except UsageError as exc:
        print(f"{PROG} {command.name}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        # The reader went away (``oompa view | head``): stop quietly, as other tools do.
        # Python's own advice: point stdout at devnull so the exit flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a folder we may not read, a disk that went away: say which
        print(f"{PROG} {command.name}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
