"""Fake ``claude``, ``codex``, ``opencode`` and ``gemini`` CLIs for pytest-oompa.

Standard library only, and imports are lazy: every fake invocation pays Python's start-up, and a
swarm test spawns hundreds of them. Each CLI's argv contract is data (one option table per CLI,
each with the source of its facts), parsed the way the real CLI's parser parses it (Commander for
claude, clap for codex, yargs for opencode and gemini), so that argv a fake accepts is argv the
real CLI accepts. See ``README.md`` next to this file for the environment variables, the state
layout, the invocation log and the scenario format.
"""

from __future__ import annotations

import os
import sys
import time

_T0 = time.monotonic()

# Exit codes of our own (never produced by the real CLIs for the argv the orchestrator sends).
NOT_EMULATED = (
    64  # a valid real mode the fakes do not emulate (interactive TUI, `exec review`, ...)
)
BAD_SCENARIO = 97  # OOMPA_FAKE_SCENARIO (or OOMPA_FAKE_CASSETTE) is missing or malformed
REPLAY_MISMATCH = 96  # replay: this call is not the recorded one (pytest_oompa.offline.cassette)
INTERNAL_ERROR = 70  # a bug in the fake itself (EX_SOFTWARE)

VERSIONS = {
    # SPEC-harnesses.md: the versions the contracts were verified against.
    "claude": "2.1.197 (Claude Code)",
    "codex": "codex-cli 0.169.0",
    "opencode": "1.18.33",
    "gemini": "0.61.0",
}

ROLES = ("worker", "reviewer", "fix", "planner", "probe")
STEP_FIELDS = frozenset(
    {
        "say",
        "claim",
        "write",
        "delete",
        "commit",
        "merge",
        "done",
        "verdict",
        "exit",
        "stderr",
        "signals_on_stderr",
        "delay",
        "hang",
        "crash",
        "output",
        "move_task",
        "create_tasks",
        "builtin",
        "comment",
    }
)
VERDICTS = {"approved": "APPROVED", "needs-changes": "NEEDS_CHANGES", "rejected": "REJECTED"}
GIT_IDENTITY = ("-c", "user.name=fake-agent", "-c", "user.email=fake@agent.invalid")


class Refuse(Exception):
    """The CLI refuses the invocation before any model turn: print, log, exit with ``code``."""

    def __init__(self, code: int, stderr: str = "", stdout: str = "") -> None:
        super().__init__(stderr)
        self.code = code
        self.stderr = stderr
        self.stdout = stdout


class BadScenario(Exception):
    pass


class BadCassette(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Option tables and the three parser families
# --------------------------------------------------------------------------------------------


class Opt:
    """One option of a CLI. kind: flag | value | optional | variadic | values | array."""

    __slots__ = ("choices", "dest", "kind", "meta", "multi", "names", "nargs1", "scope")

    def __init__(
        self,
        names: tuple[str, ...],
        kind: str = "flag",
        meta: str = "",
        choices: tuple[str, ...] = (),
        multi: bool = False,
        scope: str = "",
        nargs1: bool = False,
        dest: str | None = None,
    ) -> None:
        self.names = names
        self.kind = kind
        self.meta = meta
        self.choices = choices
        self.multi = multi
        self.scope = scope
        self.nargs1 = nargs1
        self.dest = dest or names[-1].lstrip("-").replace("-", "_")

    @property
    def flags(self) -> str:  # Commander's `option.flags`, e.g. "-r, --resume [value]"
        return ", ".join(self.names) + (" " + self.meta if self.meta else "")

    @property
    def clap(self) -> str:  # clap's display, e.g. "--model <MODEL>"
        name = next((n for n in self.names if n.startswith("--")), self.names[0])
        return name + (" " + self.meta if self.meta else "")


# claude (Commander.js). Sources: `claude --help` of 2.x as reproduced in the CLI reference
# (docs.anthropic.com/claude/docs/claude-code/cli-usage) and the flag table in
# github.com/xsyetopz/claudetto/wiki/Claude-Code-CLI-Flags; --allow-dangerously-skip-permissions
# from the cli.js root guard quoted in h0x91b/dev-3.0#1575 and anthropics/claude-code#58150.
# `-r, --resume [value]` takes an optional value; the tool lists are variadic (`<tools...>`), so
# they swallow a following prompt unless `--` precedes it, as in the real CLI.
CLAUDE_OPTS = (
    Opt(("-p", "--print")),
    Opt(("-d", "--debug"), "optional", "[filter]"),
    Opt(("--debug-file",), "value", "<path>"),
    Opt(("--verbose",)),
    Opt(("--output-format",), "value", "<format>", ("text", "json", "stream-json")),
    Opt(("--input-format",), "value", "<format>", ("text", "stream-json")),
    Opt(("--json-schema",), "value", "<schema>"),
    Opt(("--include-partial-messages",)),
    Opt(("--replay-user-messages",)),
    Opt(("--model",), "value", "<model>"),
    Opt(("--fallback-model",), "value", "<model>"),
    Opt(("--effort",), "value", "<level>"),
    Opt(("--session-id",), "value", "<uuid>"),
    Opt(("-r", "--resume"), "optional", "[value]"),
    Opt(("-c", "--continue")),
    Opt(("--fork-session",)),
    Opt(("--dangerously-skip-permissions",)),
    Opt(("--allow-dangerously-skip-permissions",)),
    Opt(("--permission-mode",), "value", "<mode>"),
    Opt(("--allowedTools", "--allowed-tools"), "variadic", "<tools...>", dest="allowed_tools"),
    Opt(
        ("--disallowedTools", "--disallowed-tools"),
        "variadic",
        "<tools...>",
        dest="disallowed_tools",
    ),
    Opt(("--tools",), "variadic", "<tools...>"),
    Opt(("--add-dir",), "variadic", "<directories...>"),
    Opt(("--append-system-prompt",), "value", "<prompt>"),
    Opt(("--system-prompt",), "value", "<prompt>"),
    Opt(("--max-turns",), "value", "<turns>"),
    Opt(("--max-budget-usd",), "value", "<amount>"),
    Opt(("--mcp-config",), "variadic", "<configs...>"),
    Opt(("--strict-mcp-config",)),
    Opt(("--settings",), "value", "<file-or-json>"),
    Opt(("--setting-sources",), "value", "<sources>"),
    Opt(("--bare",)),
    Opt(("-v", "--version")),
    Opt(("-h", "--help")),
)

# codex (clap). Source: openai/codex codex-rs/exec/src/cli.rs (exec options, `resume` args;
# `global = true` marks what is also accepted after `resume`), codex-rs/utils/cli/src/
# shared_options.rs (-i, -m, --oss, --local-provider, -p, -s, --dangerously-bypass-approvals-
# and-sandbox alias --yolo, --not-so-yolo, -C/--cd, --add-dir) and config_override.rs
# (`-c/--config key=value`, global, appendable). --enable/--disable are the global feature
# toggles SPEC-harnesses.md uses (`--disable plugins`). Scopes: "g" global (exec and resume),
# "e" exec only (so `-C` after `resume` is refused, as clap does), "r" resume only.
CODEX_OPTS = (
    Opt(("-c", "--config"), "value", "<key=value>", multi=True, scope="g"),
    Opt(("--enable",), "value", "<FEATURE>", multi=True, scope="g"),
    Opt(("--disable",), "value", "<FEATURE>", multi=True, scope="g"),
    Opt(("--skip-git-repo-check",), scope="g"),
    Opt(("--ephemeral",), scope="g"),
    Opt(("--ignore-user-config",), scope="g"),
    Opt(("--ignore-rules",), scope="g"),
    Opt(("--full-auto",), scope="g"),
    Opt(("--json", "--experimental-json"), scope="g", dest="json"),
    Opt(("-o", "--output-last-message"), "value", "<FILE>", scope="g"),
    Opt(("-m", "--model"), "value", "<MODEL>", scope="g"),
    Opt(
        ("--dangerously-bypass-approvals-and-sandbox", "--yolo"),
        scope="g",
        dest="dangerously_bypass_approvals_and_sandbox",
    ),
    Opt(("--not-so-yolo",), scope="g"),
    Opt(("-i", "--image"), "values", "<FILE>...", multi=True, scope="e"),
    Opt(("--oss",), scope="e"),
    Opt(("--local-provider",), "value", "<OSS_PROVIDER>", scope="e"),
    Opt(("-p", "--profile"), "value", "<CONFIG_PROFILE>", scope="e"),
    Opt(
        ("-s", "--sandbox"),
        "value",
        "<SANDBOX_MODE>",
        ("read-only", "workspace-write", "danger-full-access"),
        scope="e",
    ),
    Opt(("-C", "--cd"), "value", "<DIR>", scope="e"),
    Opt(("--add-dir",), "value", "<DIR>", multi=True, scope="e"),
    Opt(("--output-schema",), "value", "<FILE>", scope="e"),
    Opt(("--color",), "value", "<COLOR>", ("always", "never", "auto"), scope="e"),
    Opt(("--last",), scope="r"),
    Opt(("--all",), scope="r"),
    Opt(("-i", "--image"), "value", "<FILE>", multi=True, scope="r", dest="resume_image"),
    Opt(("-h", "--help"), scope="g"),
    Opt(("-V", "--version"), scope="e"),
)
CODEX_ROOT_DESTS = frozenset(
    {
        "config",
        "enable",
        "disable",
        "image",
        "model",
        "oss",
        "local_provider",
        "profile",
        "sandbox",
        "dangerously_bypass_approvals_and_sandbox",
        "not_so_yolo",
        "cd",
        "add_dir",
        "help",
        "version",
    }
)
CODEX_CONFLICTS = (
    ("full_auto", "dangerously_bypass_approvals_and_sandbox"),
    ("full_auto", "not_so_yolo"),
    ("not_so_yolo", "dangerously_bypass_approvals_and_sandbox"),
)
CODEX_USAGE = {
    "root": "Usage: codex [OPTIONS] [PROMPT]\n       codex [OPTIONS] <COMMAND> [ARGS]",
    "exec": "Usage: codex exec [OPTIONS] [PROMPT]\n       codex exec [OPTIONS] <COMMAND> [ARGS]",
    "resume": "Usage: codex exec resume [OPTIONS] [SESSION_ID] [PROMPT]",
}

# opencode (yargs, strict). Source: anomalyco/opencode (formerly sst/opencode)
# packages/opencode/src/cli/cmd/run.ts (`run [message..]` options, including --auto with the
# hidden aliases --yolo/--dangerously-skip-permissions) and src/index.ts (global --print-logs,
# --log-level, -h/--help, -v/--version; `.strict()` with a fail handler that shows the usage and
# exits 1 on "Unknown argument").
OPENCODE_OPTS = (
    Opt(("--print-logs",)),
    Opt(("--log-level",), "value", choices=("DEBUG", "INFO", "WARN", "ERROR")),
    Opt(("-h", "--help")),
    Opt(("-v", "--version")),
    Opt(("--command",), "value"),
    Opt(("-c", "--continue")),
    Opt(("-s", "--session"), "value"),
    Opt(("--fork",)),
    Opt(("--share",)),
    Opt(("-m", "--model"), "value"),
    Opt(("--agent",), "value"),
    Opt(("--format",), "value", choices=("default", "json")),
    Opt(("-f", "--file"), "array"),
    Opt(("--title",), "value"),
    Opt(("--attach",), "value"),
    Opt(("-p", "--password"), "value"),
    Opt(("-u", "--username"), "value"),
    Opt(("--dir",), "value"),
    Opt(("--port",), "value"),
    Opt(("--variant",), "value"),
    Opt(("--thinking",)),
    Opt(("--mini",)),
    Opt(("--replay",)),
    Opt(("--replay-limit",), "value"),
    Opt(("-i", "--interactive")),
    Opt(("--auto",)),
    Opt(("--yolo",)),
    Opt(("--dangerously-skip-permissions",)),
    Opt(("--demo",)),
)

# gemini (yargs, strict). Source: google-gemini/gemini-cli packages/cli/src/config/config.ts
# (`$0 [query..]`; -p/--prompt and -m with nargs 1; -r/--resume with an optional value;
# --session-id with its coerce check; --session-file; --skip-trust; -o with text|json|
# stream-json; the `.check()` conflicts; `.fail()` printing the message then the help, exit 1).
GEMINI_OPTS = (
    Opt(("-m", "--model"), "value", nargs1=True),
    Opt(("-p", "--prompt"), "value", nargs1=True),
    Opt(("-i", "--prompt-interactive"), "value", nargs1=True),
    Opt(("--skip-trust",)),
    Opt(("-s", "--sandbox")),
    Opt(("-y", "--yolo")),
    Opt(
        ("--approval-mode",),
        "value",
        choices=("default", "auto_edit", "yolo", "plan"),
        nargs1=True,
    ),
    Opt(("--policy",), "array"),
    Opt(("--acp",)),
    Opt(("--experimental-acp",)),
    Opt(("--allowed-mcp-server-names",), "array"),
    Opt(("--allowed-tools",), "array"),
    Opt(("-e", "--extensions"), "array"),
    Opt(("-l", "--list-extensions")),
    Opt(("-r", "--resume"), "optional"),
    Opt(("--session-file",), "value", nargs1=True),
    Opt(("--session-id",), "value", nargs1=True),
    Opt(("--list-sessions",)),
    Opt(("--delete-session",), "value"),
    Opt(("--include-directories",), "array"),
    Opt(("--screen-reader",)),
    Opt(("-o", "--output-format"), "value", choices=("text", "json", "stream-json"), nargs1=True),
    Opt(("--raw-output",)),
    Opt(("--accept-raw-output-risk",)),
    Opt(("-d", "--debug")),
    Opt(("-v", "--version")),
    Opt(("-h", "--help")),
)


def _index(table: tuple[Opt, ...], scopes: str | None = None) -> dict[str, Opt]:
    out: dict[str, Opt] = {}
    for o in table:
        if scopes is None or o.scope in scopes:
            for n in o.names:
                out[n] = o
    return out


def parse_commander(args: list[str], table: tuple[Opt, ...]) -> tuple[dict, list[str]]:
    """Commander.js semantics: options anywhere, `--` ends options, required values are greedy."""
    index = _index(table)
    opts: dict = {}
    pos: list[str] = []
    args = list(args)
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            pos.extend(args[i:])
            break
        inline = None
        if a.startswith("--"):
            name, eq, rest = a.partition("=")
            o = index.get(name)
            if o is None or (eq and o.kind == "flag"):
                raise Refuse(1, f"error: unknown option '{a}'\n")
            if eq:
                inline = rest
        elif a.startswith("-") and len(a) > 1:
            o = index.get(a[:2])
            if o is None:
                raise Refuse(1, f"error: unknown option '{a}'\n")
            if len(a) > 2:
                if o.kind == "flag":  # combined short flags: -pv
                    args.insert(i, "-" + a[2:])
                else:
                    inline = a[2:]
        else:
            pos.append(a)
            continue
        if o.kind == "flag":
            opts[o.dest] = True
            continue
        if inline is not None:
            val: object = inline
        elif o.kind == "value":
            if i >= len(args):
                raise Refuse(1, f"error: option '{o.flags}' argument missing\n")
            val = args[i]
            i += 1
        elif o.kind == "optional":
            if i < len(args) and not args[i].startswith("-"):
                val = args[i]
                i += 1
            else:
                val = True
        else:  # variadic: the first value is required, then values until the next option
            if i >= len(args):
                raise Refuse(1, f"error: option '{o.flags}' argument missing\n")
            vals = [args[i]]
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                vals.append(args[i])
                i += 1
            opts.setdefault(o.dest, []).extend(vals)
            continue
        if o.choices and val not in o.choices:
            raise Refuse(
                1,
                f"error: option '{o.flags}' argument '{val}' is invalid. "
                f"Allowed choices are {', '.join(o.choices)}.\n",
            )
        opts[o.dest] = val
    return opts, pos


def _clap_error(msg: str, usage: str | None) -> Refuse:
    text = f"error: {msg}\n\n"
    if usage:
        text += usage + "\n\n"
    return Refuse(2, text + "For more information, try '--help'.\n")


def parse_clap(
    args: list[str],
    index: dict[str, Opt],
    usage: str,
    max_pos: int,
    subcommands: tuple[str, ...] = (),
    opts: dict | None = None,
    seen: set | None = None,
) -> tuple[dict, list[str], str | None, list[str]]:
    """clap semantics: returns (opts, positionals, subcommand, args after the subcommand)."""
    opts = {} if opts is None else opts
    seen = set() if seen is None else seen
    pos: list[str] = []
    args = list(args)
    after_dd = False
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if after_dd or a == "-" or not a.startswith("-"):
            if not after_dd and not pos and a in subcommands:
                return opts, pos, a, args[i:]
            if len(pos) >= max_pos:
                raise _clap_error(f"unexpected argument '{a}' found", usage)
            pos.append(a)
            continue
        if a == "--":
            after_dd = True
            continue
        inline = None
        if a.startswith("--"):
            name, eq, rest = a.partition("=")
            o = index.get(name)
            if eq:
                inline = rest
        else:
            o = index.get(a[:2])
            if o is not None and len(a) > 2:
                if o.kind == "flag":
                    args.insert(i, "-" + a[2:])
                else:
                    inline = a[2:].removeprefix("=")
        if o is None:
            raise _clap_error(
                f"unexpected argument '{a}' found\n\n  tip: to pass '{a}' as a value, use '-- {a}'",
                usage,
            )
        if o.dest in seen and not o.multi:
            raise _clap_error(f"the argument '{o.clap}' cannot be used multiple times", usage)
        seen.add(o.dest)
        if o.kind == "flag":
            if inline is not None:
                raise _clap_error(
                    f"unexpected value '{inline}' for '{o.clap}' found; no more were expected",
                    usage,
                )
            opts[o.dest] = True
            continue
        if inline is not None:
            vals = [inline]
        else:
            if i >= len(args) or (args[i].startswith("-") and args[i] != "-"):
                raise _clap_error(f"a value is required for '{o.clap}' but none was supplied", None)
            vals = [args[i]]
            i += 1
        if o.kind == "values":  # num_args = 1.., value_delimiter = ','
            while i < len(args) and not args[i].startswith("-"):
                vals.append(args[i])
                i += 1
            vals = [p for v in vals for p in v.split(",")]
        for v in vals:
            if o.choices and v not in o.choices:
                raise _clap_error(
                    f"invalid value '{v}' for '{o.clap}'\n  [possible values: "
                    f"{', '.join(o.choices)}]",
                    None,
                )
        if o.multi:
            opts.setdefault(o.dest, []).extend(vals)
        else:
            opts[o.dest] = vals[-1]
    return opts, pos, None, []


def _camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def parse_yargs(args: list[str], table: tuple[Opt, ...]) -> dict:
    """yargs-parser semantics (as configured by opencode and gemini).

    Returns {"opts", "pos", "dd" (args after --), "unknown" (keys), "invalid" (choice errors)}.
    Raises Refuse only for parse-time errors ("Not enough arguments following").
    """
    index: dict[str, Opt] = {}
    for o in table:
        for n in o.names:
            index[n] = o
            if n.startswith("--"):
                index["--" + _camel(n[2:])] = o
    opts: dict = {}
    pos: list[str] = []
    unknown: list[str] = []
    invalid: list[str] = []
    dd: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            dd = list(args[i:])
            break
        if not a.startswith("-") or a == "-" or _is_number(a):
            pos.append(a)
            continue
        if a.startswith("--"):
            key, eq, inline_v = a[2:].partition("=")
            inline = inline_v if eq else None
            o = index.get("--" + key)
            neg = False
            if o is None and key.startswith("no-"):
                o2 = index.get("--" + key[3:])
                if o2 is not None and o2.kind == "flag":
                    o, neg = o2, True
            keys = [(key, o, inline, neg)]
        else:
            body, eq, inline_v = a[1:].partition("=")
            keys = [(c, index.get("-" + c), None, False) for c in body[:-1]]
            keys.append((body[-1], index.get("-" + body[-1]), inline_v if eq else None, False))
        for key, o, inline, neg in keys:
            if o is None:
                unknown.append(key)
                if "-" in key:
                    unknown.append(_camel(key))
                if inline is None and i < len(args) and not args[i].startswith("-"):
                    i += 1  # yargs assigns the next word to the unknown key
                continue
            if o.kind == "flag":
                if inline is not None:
                    val: object = inline != "false"
                elif i < len(args) and args[i] in ("true", "false"):
                    val = args[i] == "true"
                    i += 1
                else:
                    val = True
                opts[o.dest] = (not val) if neg else val
                continue
            if o.kind == "array":
                vals = [] if inline is None else [inline]
                while i < len(args) and not args[i].startswith("-"):
                    vals.append(args[i])
                    i += 1
                opts.setdefault(o.dest, []).extend(vals)
                continue
            if inline is not None:
                val = inline
            elif i < len(args) and (not args[i].startswith("-") or _is_number(args[i])):
                val = args[i]
                i += 1
            elif o.nargs1:
                raise Refuse(1, f"Not enough arguments following: {key}\n")
            else:
                val = ""
            if o.choices and val not in o.choices:
                given = f'"{val}"'
                choices = ", ".join(f'"{c}"' for c in o.choices)
                name = o.names[-1].lstrip("-")
                invalid.append(f"  Argument: {name}, Given: {given}, Choices: {choices}")
            opts[o.dest] = val
    return {"opts": opts, "pos": pos, "dd": dd, "unknown": unknown, "invalid": invalid}


def yargs_unknown_message(unknown: list[str]) -> str:
    if len(unknown) == 1:
        return f"Unknown argument: {unknown[0]}"
    return "Unknown arguments: " + ", ".join(unknown)


# --------------------------------------------------------------------------------------------
# The invocation: state, session store, log
# --------------------------------------------------------------------------------------------


def state_dir() -> str:
    s = os.environ.get("OOMPA_FAKE_STATE")
    if s:
        return s
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "oompa-fake")


def atomic_write(path: str, text: str) -> None:
    """Write via a unique temp file and rename, so concurrent fakes never see a torn file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def new_uuid() -> str:
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def opencode_id(prefix: str) -> str:
    """opencode's ids: prefix + 12 hex digits of time + 14 random base62 chars (26 in all)."""
    head = format(int(time.time() * 1000) * 0x1000 & (16**12 - 1), "012x")
    tail = "".join(_B62[b % 62] for b in os.urandom(14))
    return f"{prefix}_{head}{tail}"


def is_uuid(s: str) -> bool:
    parts = s.split("-")
    if [len(p) for p in parts] != [8, 4, 4, 4, 12]:
        return False
    return all(c in "0123456789abcdefABCDEF" for p in parts for c in p)


def safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in s) or "_"


def find_git(path: str) -> str | None:
    """The git common dir of the repo containing ``path`` (worktrees resolve to the main repo)."""
    p = os.path.realpath(path)
    while True:
        dot = os.path.join(p, ".git")
        if os.path.isdir(dot):
            return dot
        if os.path.isfile(dot):
            try:
                with open(dot, encoding="utf-8") as f:
                    gitdir = f.read().strip().removeprefix("gitdir:").strip()
                gitdir = os.path.realpath(os.path.join(p, gitdir))
                common = os.path.join(gitdir, "commondir")
                if os.path.isfile(common):
                    with open(common, encoding="utf-8") as f:
                        return os.path.realpath(os.path.join(gitdir, f.read().strip()))
                return gitdir
            except OSError:
                return None
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent


class Run:
    """Everything known about this invocation; feeds the log line."""

    def __init__(self, harness: str, argv: list[str]) -> None:
        self.harness = harness
        self.argv = argv
        try:
            self.cwd = os.getcwd()
        except OSError:
            self.cwd = os.environ.get("PWD", "/")
        self.workdir = self.cwd
        self.prompt: str | None = None
        self.stdin_text: str | None = None
        self.stdin_state: str | None = None
        self.session_id: str | None = None
        self.session: dict | None = None
        self.resumed = False
        self.fmt: str | None = None
        self.model: str | None = None
        self.auto = False
        self.role: str | None = None
        self.worker: str | None = None
        self.swarm: str | None = None
        self.call: int | None = None
        self.logged = False
        self.extra: dict = {}

    # -- stdin ------------------------------------------------------------------------------
    def read_stdin(self, wait: float | None) -> None:
        """wait=None: read to EOF whenever stdin is not a TTY (codex, opencode: an open pipe
        blocks). wait=N: wait up to N s for data, then read to EOF (claude 3 s, gemini 0.5 s)."""
        try:
            if os.isatty(0):
                self.stdin_state = "tty"
                return
        except OSError:
            self.stdin_state = "closed"
            return
        if wait is not None:
            import select

            try:
                ready, _, _ = select.select([0], [], [], wait)
            except (OSError, ValueError):
                self.stdin_state = "closed"
                return
            if not ready:
                self.stdin_state = "timeout"
                return
        chunks = []
        try:
            while True:
                b = os.read(0, 65536)
                if not b:
                    break
                chunks.append(b)
        except OSError:
            self.stdin_state = "closed"
            return
        data = b"".join(chunks).decode("utf-8", "replace")
        self.stdin_state = "data" if data else "eof"
        self.stdin_text = data or None

    # -- sessions ---------------------------------------------------------------------------
    def session_file(self, sid: str) -> str:
        return os.path.join(state_dir(), self.harness, "sessions", safe_name(sid) + ".json")

    def load_session(self, sid: str) -> dict | None:
        import json

        try:
            with open(self.session_file(sid), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("id") == sid else None

    def all_sessions(self) -> list[dict]:
        import json

        d = os.path.join(state_dir(), self.harness, "sessions")
        out = []
        try:
            names = os.listdir(d)
        except OSError:
            return out
        for n in names:
            if n.endswith(".json"):
                try:
                    with open(os.path.join(d, n), encoding="utf-8") as f:
                        s = json.load(f)
                except (OSError, ValueError):
                    continue
                if isinstance(s, dict) and "id" in s:
                    out.append(s)
        out.sort(key=lambda s: (s.get("created_at", 0), s.get("id", "")))
        return out

    def start_session(self, sid: str, scope: str, fork_of: dict | None = None) -> None:
        now = time.time()
        self.session_id = sid
        self.session = {
            "id": sid,
            "harness": self.harness,
            "scope": scope,
            "cwd": self.workdir,
            "model": self.model,
            "created_at": now,
            "updated_at": now,
            "forked_from": fork_of["id"] if fork_of else None,
            "turns": list(fork_of.get("turns", [])) if fork_of else [],
        }

    def resume_session(self, session: dict) -> None:
        self.session = session
        self.session_id = session["id"]
        self.resumed = True

    def save_session(self) -> None:
        import json

        if self.session is None:
            return
        self.session["updated_at"] = time.time()
        atomic_write(
            self.session_file(self.session["id"]),
            json.dumps(self.session, indent=1, ensure_ascii=False),
        )

    # -- log --------------------------------------------------------------------------------
    def log(self, exit_code: int | None, **extra: object) -> None:
        """Append one JSON line with a single O_APPEND write, so concurrent fakes never mix."""
        if self.logged:
            return
        self.logged = True
        path = os.environ.get("OOMPA_FAKE_LOG")
        if not path:
            return
        import json

        rec = {
            "ts": time.time(),
            "harness": self.harness,
            "argv": [self.harness, *self.argv],
            "cwd": self.cwd,
            "stdin": self.stdin_text,
            "stdin_state": self.stdin_state,
            "env": env_subset(),
            "exit_code": exit_code,
            "role": self.role,
            "worker": self.worker,
            "swarm": self.swarm,
            "call": self.call,
            "session_id": self.session_id,
            "resumed": self.resumed,
            "model": self.model,
            "format": self.fmt,
            "auto_approve": self.auto,
            "pid": os.getpid(),
            "duration_ms": int((time.monotonic() - _T0) * 1000),
        }
        rec.update(self.extra)
        rec.update(extra)
        data = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def env_subset() -> dict[str, str]:
    out = {}
    for k, v in os.environ.items():
        ku = k.upper()
        secret = "KEY" in ku or "TOKEN" in ku or "SECRET" in ku
        if secret:
            out[k] = "<redacted>"
        elif (
            k.startswith("OOMPA_")
            or k in ("IS_SANDBOX", "GEMINI_CLI_TRUST_WORKSPACE")
            or k.endswith("_BASE_URL")
        ):
            out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# The four CLIs: argv contract, refusals, sessions
# --------------------------------------------------------------------------------------------


def euid() -> int:
    forced = os.environ.get("OOMPA_FAKE_EUID")
    if forced is not None:
        return int(forced)
    return os.geteuid() if hasattr(os, "geteuid") else 1000


def claude(run: Run) -> int:
    opts, pos = parse_commander(run.argv, CLAUDE_OPTS)
    if opts.get("help"):
        emit("Usage: claude [options] [command] [prompt]\n\nClaude Code (fake)\n")
        return 0
    if opts.get("version"):
        emit(version_line("claude") + "\n")
        return 0
    run.model = opts.get("model")
    if not opts.get("print"):
        raise Refuse(NOT_EMULATED, "fake claude: interactive mode is not emulated; pass -p\n")
    bypass = (
        opts.get("dangerously_skip_permissions")
        or opts.get("allow_dangerously_skip_permissions")
        or opts.get("permission_mode") == "bypassPermissions"
    )
    run.auto = bool(
        opts.get("dangerously_skip_permissions")
        or opts.get("permission_mode") == "bypassPermissions"
    )
    # cli.js root guard (anthropics/claude-code#58150): exit 1 unless IS_SANDBOX=1 or bubblewrap.
    if (
        bypass
        and euid() == 0
        and os.environ.get("IS_SANDBOX") != "1"
        and os.environ.get("CLAUDE_CODE_BUBBLEWRAP") != "1"
    ):
        raise Refuse(
            1,
            "--dangerously-skip-permissions cannot be used with root/sudo privileges "
            "for security reasons\n",
        )
    run.fmt = opts.get("output_format", "text")
    if run.fmt == "stream-json" and not opts.get("verbose"):
        raise Refuse(
            1, "Error: When using --print, --output-format=stream-json requires --verbose\n"
        )
    if opts.get("input_format") == "stream-json":
        raise Refuse(NOT_EMULATED, "fake claude: --input-format stream-json is not emulated\n")
    resume = opts.get("resume")
    sid = opts.get("session_id")
    continuing = resume is not None or opts.get("continue")
    if sid is not None and continuing and not opts.get("fork_session"):
        raise Refuse(
            1,
            "Error: --session-id can only be used with --continue or --resume if "
            "--fork-session is also specified.\n",
        )
    if sid is not None and not is_uuid(sid):
        raise Refuse(1, "Error: Invalid session ID. Must be a valid UUID.\n")
    if len(pos) > 1:  # Commander's excess-arguments check: [prompt] is the only argument
        raise Refuse(1, f"error: too many arguments. Expected 1 argument but got {len(pos)}.\n")
    run.read_stdin(3.0)
    prompt = pos[0] if pos else ""
    if run.stdin_text:
        prompt = f"{prompt}\n\n{run.stdin_text}" if prompt else run.stdin_text
    if not prompt.strip():
        raise Refuse(
            1,
            "Error: Input must be provided either through stdin or as a prompt argument "
            "when using --print\n",
        )
    run.prompt = prompt
    # Sessions are project-scoped: a transcript lives under the cwd it was started in, and
    # `--resume` from another directory does not find it (anthropics/claude-code#5768).
    scope = os.path.realpath(run.cwd)
    if resume is not None:
        value = "" if resume is True else str(resume)
        if not is_uuid(value):
            run.session_id = value or None
            raise Refuse(
                1,
                "Error: --resume requires a valid session ID or session title when used with "
                f'--print. Usage: claude -p --resume <session-id|title>. Provided value "{value}" '
                "is not a UUID and does not match any session title.\n",
            )
        found = run.load_session(value)
        if found is None or found.get("scope") != scope:
            run.session_id = value
            raise Refuse(1, f"No conversation found with session ID: {value}\n")
        if opts.get("fork_session"):
            run.start_session(sid or new_uuid(), scope, fork_of=found)
            run.resumed = True
        else:
            run.resume_session(found)
    elif opts.get("continue"):
        mine = [s for s in run.all_sessions() if s.get("scope") == scope]
        if mine and not opts.get("fork_session"):
            run.resume_session(mine[-1])
        else:
            run.start_session(sid or new_uuid(), scope, fork_of=mine[-1] if mine else None)
            run.resumed = bool(mine)
    else:
        sid = sid or new_uuid()
        if os.path.exists(run.session_file(sid)):
            run.session_id = sid
            raise Refuse(1, f"Error: Session ID {sid} is already in use.\n")
        run.start_session(sid, scope)
    return agent_turn(run)


def codex(run: Run) -> int:
    # The root `codex` command takes -c/--enable/--disable and the shared options only;
    # --json, --skip-git-repo-check etc. belong to `exec`.
    root_index = {n: o for n, o in _index(CODEX_OPTS, "ge").items() if o.dest in CODEX_ROOT_DESTS}
    opts, pos, sub, rest = parse_clap(run.argv, root_index, CODEX_USAGE["root"], 1, ("exec", "e"))
    if sub is None:
        if opts.get("help") or opts.get("version"):
            emit((version_line("codex") if opts.get("version") else VERSIONS["codex"]) + "\n")
            return 0
        raise Refuse(NOT_EMULATED, "fake codex: only `codex exec` is emulated\n")
    opts, pos, sub, rest = parse_clap(
        rest, _index(CODEX_OPTS, "ge"), CODEX_USAGE["exec"], 1, ("resume", "review"), opts
    )
    resume_args: list[str] | None = None
    if sub == "review":
        raise Refuse(NOT_EMULATED, "fake codex: `codex exec review` is not emulated\n")
    if sub == "resume":
        opts, pos, _, _ = parse_clap(
            rest, _index(CODEX_OPTS, "gr"), CODEX_USAGE["resume"], 2, (), opts
        )
        resume_args = pos
    if opts.get("help"):
        emit(CODEX_USAGE["exec"] + "\n")
        return 0
    if opts.get("version"):
        emit(VERSIONS["codex"].replace("cli", "exec") + "\n")
        return 0
    for a, b in CODEX_CONFLICTS:
        if opts.get(a) and opts.get(b):
            names = {o.dest: o.clap for o in CODEX_OPTS}
            raise _clap_error(
                f"the argument '{names[a]}' cannot be used with '{names[b]}'",
                CODEX_USAGE["resume" if resume_args is not None else "exec"],
            )
    run.model = opts.get("model")
    run.fmt = "json" if opts.get("json") else "text"
    run.auto = bool(
        opts.get("dangerously_bypass_approvals_and_sandbox")
        or opts.get("sandbox") == "danger-full-access"
    )
    for kv in opts.get("config", []):
        if "=" not in kv:
            raise Refuse(1, f"Error parsing -c overrides: Invalid override (missing '='): {kv}\n")
    if opts.get("cd"):
        run.workdir = os.path.normpath(os.path.join(run.cwd, opts["cd"]))
        if not os.path.isdir(run.workdir):
            raise Refuse(1, "Error: No such file or directory (os error 2)\n")
    if not opts.get("skip_git_repo_check") and find_git(run.workdir) is None:
        raise Refuse(
            1, "Not inside a trusted directory and --skip-git-repo-check was not specified.\n"
        )
    if resume_args is not None:
        if not resume_args and not opts.get("last"):
            raise Refuse(NOT_EMULATED, "fake codex: `exec resume` needs a SESSION_ID or --last\n")
        if opts.get("last") and len(resume_args) < 2:
            target, prompt = None, (resume_args[0] if resume_args else None)
        else:
            target = resume_args[0] if resume_args else None
            prompt = resume_args[1] if len(resume_args) > 1 else None
    else:
        target, prompt = None, (pos[0] if pos else None)
    # codex-rs/exec/src/lib.rs: no prompt (or "-") reads stdin; a piped stdin next to a prompt
    # is appended as a <stdin> block. Either way a non-TTY stdin is read to EOF.
    if prompt is None or prompt == "-":
        if os.isatty(0) and prompt is None:
            raise Refuse(
                1,
                "No prompt provided. Either specify one as an argument or pipe the prompt into "
                "stdin.\n",
            )
        if prompt is None:
            sys.stderr.write("Reading prompt from stdin...\n")
        run.read_stdin(None)
        if not (run.stdin_text or "").strip():
            raise Refuse(1, "No prompt provided via stdin.\n")
        prompt = run.stdin_text or ""
    else:
        run.read_stdin(None)
        if run.stdin_text and run.stdin_text.strip():
            prompt = f"{prompt}\n\n<stdin>\n{run.stdin_text}\n</stdin>"
    run.prompt = prompt
    if resume_args is not None:
        if target is None:  # --last: the newest session for this workdir (all with --all)
            cands = [
                s for s in run.all_sessions() if opts.get("all") or s.get("cwd") == run.workdir
            ]
            if cands:
                run.resume_session(cands[-1])
            else:
                run.start_session(new_uuid(), "")
        else:
            found = run.load_session(target)
            if found is None:
                run.session_id = target
                raise Refuse(1, f"Error: no rollout found for thread id {target}\n")
            run.resume_session(found)
    else:
        run.start_session(new_uuid(), "")
    run.extra["output_last_message"] = opts.get("output_last_message")
    return agent_turn(run)


OPENCODE_USAGE = """opencode run [message..]

run opencode with a message

Positionals:
  message  message to send                                          [array] [default: []]

Options:
  -h, --help                          show help                                  [boolean]
  -v, --version                       show version number                        [boolean]
      --print-logs                    print logs to stderr                       [boolean]
      --log-level                     log level
                                        [string] [choices: "DEBUG", "INFO", "WARN", "ERROR"]
      --command                       the command to run, use message for args    [string]
  -c, --continue                      continue the last session                  [boolean]
  -s, --session                       session id to continue                      [string]
      --fork                          fork the session before continuing         [boolean]
      --share                         share the session                          [boolean]
  -m, --model                         model to use in the format of provider/model [string]
      --agent                         agent to use                                [string]
      --format                        format: default (formatted) or json (raw JSON events)
                                   [string] [choices: "default", "json"] [default: "default"]
  -f, --file                          file(s) to attach to message                 [array]
      --title                         title for the session                       [string]
      --attach                        attach to a running opencode server         [string]
      --dir                           directory to run in                         [string]
      --port                          port for the local server                   [number]
      --variant                       model variant                               [string]
      --thinking                      show thinking blocks                       [boolean]
      --auto                          auto-approve permissions that are not explicitly
                                      denied (dangerous!)       [boolean] [default: false]
"""


def opencode(run: Run) -> int:
    p = parse_yargs(run.argv, OPENCODE_OPTS)
    opts = p["opts"]
    if opts.get("version"):
        emit(version_line("opencode") + "\n")
        return 0
    if not p["pos"] or p["pos"][0] != "run":
        if p["unknown"]:
            raise Refuse(1, OPENCODE_USAGE)
        raise Refuse(NOT_EMULATED, "fake opencode: only `opencode run` is emulated\n")
    if opts.get("help"):
        emit(OPENCODE_USAGE)
        return 0
    # index.ts: `.fail()` shows the usage (no message) and exits 1 for unknown arguments and
    # invalid choices.
    if p["unknown"] or p["invalid"]:
        raise Refuse(1, OPENCODE_USAGE)
    run.model = opts.get("model")
    run.fmt = opts.get("format", "default")
    run.auto = bool(
        opts.get("auto") or opts.get("yolo") or opts.get("dangerously_skip_permissions")
    )
    if opts.get("mini") or opts.get("interactive") or opts.get("command"):
        raise Refuse(NOT_EMULATED, "fake opencode: --mini/--interactive/--command not emulated\n")
    if opts.get("dir"):
        target = os.path.join(run.cwd, opts["dir"])
        if not os.path.isdir(target):
            raise Refuse(1, f"Error: Failed to change directory to {opts['dir']}\n")
        run.workdir = os.path.realpath(target)
    # run.ts joins the words, quoting any word with a space, and sends *that* text to the model.
    words = p["pos"][1:] + p["dd"]
    message = " ".join('"' + w.replace('"', '\\"') + '"' if " " in w else w for w in words)
    run.read_stdin(None)
    if run.stdin_text:
        message = f"{message}\n{run.stdin_text}" if message else run.stdin_text
    if not message.strip():
        raise Refuse(1, "Error: You must provide a message or a command\n")
    if opts.get("fork") and not (opts.get("continue") or opts.get("session")):
        raise Refuse(1, "Error: --fork requires --continue or --session\n")
    run.prompt = message
    if run.model is not None and "/" not in run.model:
        raise Refuse(
            1,
            f"Error: Model not found: {run.model}/\nTry: `opencode models` to list available "
            "models\nOr check your config (opencode.json) provider/model names\n",
        )
    # Sessions belong to a project: the git repository (worktrees share it), else "global".
    scope = find_git(run.workdir) or "global"
    if opts.get("session"):
        found = run.load_session(opts["session"])
        if found is None or found.get("scope") != scope:
            run.session_id = opts["session"]
            raise Refuse(1, "Error: Session not found\n")
        if opts.get("fork"):
            run.start_session(opencode_id("ses"), scope, fork_of=found)
            run.resumed = True
        else:
            run.resume_session(found)
    elif opts.get("continue"):
        mine = [s for s in run.all_sessions() if s.get("scope") == scope]
        if mine and not opts.get("fork"):
            run.resume_session(mine[-1])
        else:
            run.start_session(opencode_id("ses"), scope, fork_of=mine[-1] if mine else None)
            run.resumed = bool(mine)
    else:
        run.start_session(opencode_id("ses"), scope)
    return agent_turn(run)


GEMINI_HELP = """Usage: gemini [options] [command]

Gemini CLI - Launch an interactive CLI, use -p/--prompt for non-interactive mode

Options:
  -m, --model                Model                                              [string]
  -p, --prompt               Run in non-interactive (headless) mode with the given prompt.
  -i, --prompt-interactive   Execute the provided prompt and continue in interactive mode
      --skip-trust           Trust the current workspace for this session.
  -y, --yolo                 Automatically accept all actions                   [boolean]
      --approval-mode        Set the approval mode [choices: "default", "auto_edit", "yolo", "plan"]
  -r, --resume               Resume a previous session.                          [string]
      --session-id           Start a new session with a manually provided UUID.  [string]
  -o, --output-format        The format of the CLI output.
                                          [string] [choices: "text", "json", "stream-json"]
  -v, --version              Show version number                                [boolean]
  -h, --help                 Show help                                          [boolean]
"""


def gemini(run: Run) -> int:
    try:
        p = parse_yargs(run.argv, GEMINI_OPTS)
    except Refuse as r:
        raise Refuse(1, r.stderr + GEMINI_HELP) from None
    opts = p["opts"]
    if opts.get("help"):
        emit(GEMINI_HELP)
        return 0
    if opts.get("version"):
        emit(version_line("gemini") + "\n")
        return 0

    def fail(msg: str) -> Refuse:  # config.ts `.fail()`: the message, then the help, exit 1
        return Refuse(1, msg + "\n" + GEMINI_HELP)

    sid = opts.get("session_id")
    if sid is not None:  # the option's coerce runs while parsing
        sid = sid.strip()
        if not sid:
            raise fail("The --session-id option cannot be empty.")
        if not all(c.isalnum() or c in "-_" for c in sid):
            raise fail(
                f'Invalid session ID "{sid}": Only alphanumeric characters, dashes, and '
                "underscores are allowed."
            )
    if p["unknown"]:
        raise fail(yargs_unknown_message(p["unknown"]))
    if p["invalid"]:
        raise fail("Invalid values:\n" + "\n".join(p["invalid"]))
    query = p["pos"] + p["dd"]
    if sum(k in opts for k in ("resume", "session_id", "session_file")) > 1:
        raise fail(
            "The flags --resume, --session-id, and --session-file are mutually exclusive. "
            "Please provide only one."
        )
    if opts.get("prompt") and query:
        raise fail("Cannot use both a positional prompt and the --prompt (-p) flag together")
    if opts.get("prompt") and opts.get("prompt_interactive"):
        raise fail("Cannot use both --prompt (-p) and --prompt-interactive (-i) together")
    if opts.get("yolo") and opts.get("approval_mode"):
        raise fail(
            "Cannot use both --yolo (-y) and --approval-mode together. "
            "Use --approval-mode=yolo instead."
        )
    run.model = opts.get("model")
    run.fmt = opts.get("output_format", "text")
    run.auto = bool(opts.get("yolo") or opts.get("approval_mode") == "yolo")
    for k in ("prompt_interactive", "list_sessions", "delete_session", "list_extensions", "acp"):
        if opts.get(k):
            raise Refuse(NOT_EMULATED, f"fake gemini: --{k.replace('_', '-')} is not emulated\n")
    if opts.get("session_file"):
        raise Refuse(NOT_EMULATED, "fake gemini: --session-file is not emulated\n")
    # Workspace trust (gemini-cli >= 0.39): headless runs in an untrusted folder exit 55.
    if not opts.get("skip_trust") and os.environ.get("GEMINI_CLI_TRUST_WORKSPACE") != "true":
        msg = ""
        if run.auto:
            msg += (
                'Approval mode overridden to "default" because the current folder is not trusted.\n'
            )
        msg += (
            "Gemini CLI is not running in a trusted directory. To proceed, either use "
            "`--skip-trust`, set the `GEMINI_CLI_TRUST_WORKSPACE=true` environment variable, "
            "or trust this directory in interactive mode.\n"
        )
        raise Refuse(55, msg)
    prompt = opts.get("prompt") or " ".join(query)
    if query and not opts.get("prompt") and os.isatty(0) and os.isatty(1):
        raise Refuse(NOT_EMULATED, "fake gemini: interactive mode is not emulated; pass -p\n")
    run.read_stdin(0.5)
    if run.stdin_text:  # "-p: Appended to input on stdin (if any)"
        prompt = f"{run.stdin_text}\n\n{prompt}" if prompt else run.stdin_text
    if not prompt.strip():
        if run.stdin_state == "tty":
            raise Refuse(NOT_EMULATED, "fake gemini: interactive mode is not emulated; pass -p\n")
        raise Refuse(
            42,
            "No input provided via stdin. Input can be provided by piping data into gemini or "
            "using the --prompt option.\n",
        )
    run.prompt = prompt
    scope = os.path.realpath(run.cwd)  # sessions live under ~/.gemini/tmp/<project>/chats
    if "resume" in opts:
        value = str(opts["resume"]).strip()
        mine = [s for s in run.all_sessions() if s.get("scope") == scope]
        found = None
        if value in ("", "latest"):
            found = mine[-1] if mine else None
        elif value.isdigit():
            k = int(value)
            found = mine[k - 1] if 1 <= k <= len(mine) else None
        else:
            found = next((s for s in mine if s["id"] == value), None)
        if found is None:
            run.session_id = value or None
            raise Refuse(
                42,
                f'Error resuming session: Invalid session identifier "{value}".\n  Use '
                "--list-sessions to see available sessions, then use --resume {number}, "
                "--resume {uuid}, or --resume latest.\n",
            )
        run.resume_session(found)
    elif sid is not None:
        found = run.load_session(sid)
        if found is not None and found.get("scope") == scope:
            run.session_id = sid
            # gemini.tsx (google-gemini/gemini-cli#27282); exit code: FATAL_INPUT_ERROR.
            raise Refuse(
                42,
                f'Error starting session: Session ID "{sid}" already exists. Use --resume to '
                "resume it, or provide a different ID.\n",
            )
        run.start_session(sid, scope)
    else:
        run.start_session(new_uuid(), scope)
    return agent_turn(run)


HANDLERS = {"claude": claude, "codex": codex, "opencode": opencode, "gemini": gemini}


# --------------------------------------------------------------------------------------------
# The agent turn: role, call index, scenario step, side effects, reply, output
# --------------------------------------------------------------------------------------------


def infer_role(run: Run) -> None:
    import re

    prompt = run.prompt or ""
    # A tag at the start of a line; opencode quotes a one-word-with-spaces message: `"[oompa:`.
    m = re.search(r'^"?\[oompa:(.*):([^:\]\s]+)\] ', prompt, re.M)
    if m:
        run.swarm, run.worker = m.group(1), m.group(2)
    if "[_HIDE_TEST_]" in prompt:
        run.role = "probe"
    elif run.worker == "planner":
        run.role = "planner"
    elif "VERDICT: APPROVED\nVERDICT: NEEDS_CHANGES\nVERDICT: REJECTED" in prompt:
        run.role = "reviewer"  # the required-verdict block that ends every review prompt
    elif "Fix these issues." in prompt:
        run.role = "fix"  # checked before the loose verdict test: fix prompts quote feedback
    elif "VERDICT: NEEDS_CHANGES" in prompt:
        run.role = "reviewer"
    else:
        run.role = "worker"


def next_call(run: Run) -> int:
    """Per (worker, role) call counter; flock makes concurrent updates safe."""
    import fcntl

    d = os.path.join(state_dir(), "calls")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{safe_name(run.worker or '_')}__{run.role}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.read(fd, 64).strip()
        n = (int(raw) if raw.isdigit() else 0) + 1
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(n).encode())
    finally:
        os.close(fd)
    return n


def load_scenario() -> dict | None:
    import json

    src = os.environ.get("OOMPA_FAKE_SCENARIO")
    if not src:
        return None
    if src.lstrip().startswith("{"):
        text, where = src, "OOMPA_FAKE_SCENARIO (inline JSON)"
    else:
        where = src
        try:
            with open(src, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise BadScenario(f"cannot read {src}: {e}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise BadScenario(f"{where} is not valid JSON: {e}") from None
    validate_scenario(data, where)
    return data


def validate_scenario(data: object, where: str) -> None:
    def bad(path: str, msg: str) -> BadScenario:
        return BadScenario(f"{where}: {path}: {msg}")

    def check_roles(entry: object, path: str) -> None:
        if not isinstance(entry, dict):
            raise bad(path, "expected an object of role -> step(s)")
        for role, steps in entry.items():
            if role not in ROLES:
                raise bad(f"{path}.{role}", f"unknown role (expected one of {', '.join(ROLES)})")
            items = steps if isinstance(steps, list) else [steps]
            for i, step in enumerate(items):
                check_step(step, f"{path}.{role}" + (f"[{i}]" if isinstance(steps, list) else ""))

    def check_step(step: object, path: str) -> None:
        if step is None or step == "default":
            return
        if not isinstance(step, dict):
            raise bad(path, 'a step is an object, null or "default"')
        unknown = set(step) - STEP_FIELDS
        if unknown:
            raise bad(path, f"unknown step field(s) {sorted(unknown)}")
        if "verdict" in step and step["verdict"] not in VERDICTS:
            raise bad(path + ".verdict", f"expected one of {sorted(VERDICTS)}")
        out = step.get("output")
        if out is not None and out != "malformed" and not str(out).startswith("huge:"):
            raise bad(path + ".output", 'expected "malformed" or "huge:<bytes>"')
        types = {
            "say": str,
            "stderr": str,
            "write": dict,
            "delete": list,
            "create_tasks": list,
            "move_task": (dict, list),
            "claim": (str, list),
            "commit": (bool, str),
            "delay": (int, float),
            "exit": int,
        }
        for field, kind in types.items():
            if field in step and not isinstance(step[field], kind):
                raise bad(f"{path}.{field}", f"wrong type {type(step[field]).__name__}")
        if step.get("crash"):
            import signal

            name = str(step["crash"]).upper()
            if not isinstance(
                getattr(signal, name if name.startswith("SIG") else "SIG" + name, None), int
            ):
                raise bad(path + ".crash", "expected a signal name such as SIGKILL")

    if not isinstance(data, dict):
        raise bad("$", "expected an object")
    for key in data:
        if key not in ("default", "workers", "harnesses", "comment") and key[:1] not in "_$":
            raise bad(key, "unknown top-level key (expected default, workers, harnesses)")
    if "default" in data:
        check_roles(data["default"], "default")
    for group in ("workers", "harnesses"):
        g = data.get(group, {})
        if not isinstance(g, dict):
            raise bad(group, "expected an object")
        for name, entry in g.items():
            if group == "harnesses" and name not in HANDLERS:
                raise bad(f"{group}.{name}", "unknown harness")
            check_roles(entry, f"{group}.{name}")


_FALLBACK = object()


def pick(entry: object, call: int) -> object:
    if entry is None or entry == "default":
        return _FALLBACK
    if isinstance(entry, list):
        if not entry:
            return _FALLBACK
        if call <= len(entry):
            item = entry[call - 1]
        elif entry[-1] == "default":
            return _FALLBACK
        else:
            item = entry[-1]
        return _FALLBACK if item is None or item == "default" else item
    return entry


def select_step(run: Run, scn: dict | None) -> tuple[dict | None, str]:
    """workers[worker][role] -> harnesses[harness][role] -> default[role] -> built-in."""
    if scn:
        chain = []
        if run.worker:
            chain.append((f"workers.{run.worker}", scn.get("workers", {}).get(run.worker)))
        chain.append((f"harnesses.{run.harness}", scn.get("harnesses", {}).get(run.harness)))
        chain.append(("default", scn.get("default")))
        for where, entry in chain:
            if entry and run.role in entry:
                step = pick(entry[run.role], run.call or 1)
                if step is not _FALLBACK:
                    return step, f"{where}.{run.role}"  # type: ignore[return-value]
    return None, "builtin"


def tasks_dir(run: Run) -> str:
    """Workers see the shared queue at ../tasks (worktrees sit in the project root)."""
    if run.role != "planner":
        up = os.path.join(os.path.dirname(run.workdir), "tasks")
        if os.path.isdir(up):
            return up
    return os.path.join(run.workdir, "tasks")


def pending_ids(run: Run) -> list[str]:
    d = os.path.join(tasks_dir(run), "pending")
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return []
    ids = []
    for n in names:
        tid = n[:-5]
        valid = tid not in ("", ".", "..") and all(c.isalnum() or c in "._-" for c in tid)
        if n.endswith(".json") and valid:
            ids.append(tid)
    return ids


class Turn:
    """Side effects of one agent turn, gated by the CLI's auto-approve mode."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.notes: list[str] = []
        self.denied: list[str] = []
        self.commits: list[str] = []
        self.written: list[str] = []

    def allowed(self, what: str) -> bool:
        if self.run.auto:
            return True
        self.denied.append(what)
        self.notes.append(
            f"fake {self.run.harness}: permission denied for {what} (no auto-approve flag)"
        )
        return False

    def path(self, rel: str) -> str:
        return os.path.normpath(os.path.join(self.run.workdir, rel))

    def write(self, rel: str, content: str, append: bool = False) -> None:
        if not self.allowed(f"write {rel}"):
            return
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "a" if append else "w", encoding="utf-8") as f:
            f.write(content)
        self.written.append(rel)

    def delete(self, rel: str) -> None:
        if not self.allowed(f"delete {rel}"):
            return
        p = self.path(rel)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                import shutil

                shutil.rmtree(p)
            else:
                os.unlink(p)
        except FileNotFoundError:
            self.notes.append(f"fake: delete {rel}: no such file")

    def git(self, *args: str):
        import subprocess

        return subprocess.run(
            ["git", *GIT_IDENTITY, "-c", "commit.gpgsign=false", *args],
            cwd=self.run.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )

    def commit(self, message: str) -> None:
        if not self.allowed("git commit"):
            return
        if find_git(self.run.workdir) is None:
            self.notes.append("fake: git commit skipped: not a git repository")
            return
        add = self.git("add", "-A")
        if add.returncode != 0:
            self.notes.append(f"fake: git add failed: {add.stderr.strip()}")
            return
        c = self.git("commit", "-q", "-m", message)
        if c.returncode != 0:
            self.notes.append(f"fake: git commit failed: {(c.stdout + c.stderr).strip()}")
        else:
            self.commits.append(message)

    def move_task(self, spec: dict) -> None:
        tid, to = str(spec.get("id", "")), str(spec.get("to", "current"))
        if not self.allowed(f"move task {tid}"):
            return
        base = tasks_dir(self.run)
        froms = [spec["from"]] if spec.get("from") else ["pending", "current", "complete"]
        for fr in froms:
            src = os.path.join(base, fr, tid + ".json")
            if os.path.exists(src) and fr != to:
                os.makedirs(os.path.join(base, to), exist_ok=True)
                os.rename(src, os.path.join(base, to, tid + ".json"))
                return
        self.notes.append(f"fake: move_task: {tid} not found")

    def create_tasks(self, tasks: list) -> list[str]:
        import json

        ids = []
        for n, t in enumerate(tasks, 1):
            task = dict(t) if isinstance(t, dict) else {"summary": str(t)}
            task.setdefault("id", f"task-{self.run.call}-{n}")
            for k, v in (("summary", task["id"]), ("description", ""), ("difficulty", "easy")):
                task.setdefault(k, v)
            task.setdefault("files", [])
            task.setdefault("acceptance", [])
            rel = os.path.join("tasks", "pending", f"{task['id']}.json")
            self.write(rel, json.dumps(task, indent=2) + "\n")
            ids.append(task["id"])
        return ids


def work_file(run: Run, suffix: str = "") -> str:
    return os.path.join("oompa-work", os.path.basename(run.workdir.rstrip("/")) + suffix + ".txt")


def builtin_reply(run: Run, turn: Turn) -> str:
    """The productive agent used when no scenario step applies."""
    import zlib

    role, who = run.role, run.worker or "-"
    if role == "probe":
        return "ok"
    if role == "reviewer":
        return "VERDICT: APPROVED"
    if role == "fix":
        turn.write(work_file(run, "-fix"), f"{who} fix call {run.call} via {run.harness}\n", True)
        turn.commit(f"{who}: fix")
        return "fixed"
    if role == "planner":
        import re

        m = re.search(r"Maximum\s+(-?\d+)\s+new\s+tasks?", run.prompt or "")
        n = max(0, min(int(m.group(1)), 2)) if m else 1
        base = os.path.join(run.workdir, "tasks")
        taken = set()
        for sub in ("pending", "current", "complete"):
            if os.path.isdir(os.path.join(base, sub)):
                taken.update(os.listdir(os.path.join(base, sub)))
        made, k = [], 1
        while len(made) < n:
            if f"task-{k}.json" not in taken:
                made.append(
                    {
                        "id": f"task-{k}",
                        "summary": f"Fake task {k}",
                        "description": f"Created by the fake {run.harness} planner.",
                        "difficulty": "easy",
                        "files": [],
                        "acceptance": [],
                    }
                )
            k += 1
        ids = turn.create_tasks(made)
        return f"Created {len(ids)} task(s): {', '.join(ids) or '-'}\n__DONE__"
    ids = pending_ids(run)
    task = ids[zlib.crc32(who.encode()) % len(ids)] if ids else None
    turn.write(
        work_file(run), f"{who} call {run.call} task {task or '-'} via {run.harness}\n", True
    )
    turn.commit(f"{who}: work")
    lines = [f"Worked on {task}." if task else "Worked."]
    if task:
        lines.append(f"CLAIM({task})")
    lines.append("COMPLETE_AND_READY_FOR_MERGE")
    return "\n".join(lines)


def template(text: str, run: Run) -> str:
    turns = len(run.session["turns"]) if run.session else 0
    for k, v in (
        ("worker", run.worker or ""),
        ("swarm", run.swarm or ""),
        ("role", run.role or ""),
        ("call", str(run.call)),
        ("harness", run.harness),
        ("session_id", run.session_id or ""),
        ("turn", str(turns)),
    ):
        text = text.replace("{" + k + "}", v)
    return text


def perform(run: Run, step: dict | None, turn: Turn) -> str:
    step = step if step is not None else {"builtin": True}
    if step.get("delay"):
        time.sleep(float(step["delay"]))
    parts = []
    if step.get("say"):
        parts.append(template(str(step["say"]), run))
    if step.get("builtin"):
        parts.append(builtin_reply(run, turn))
    moves = step.get("move_task")
    for mv in moves if isinstance(moves, list) else [moves] if moves else []:
        turn.move_task(mv)
    if step.get("create_tasks"):
        turn.create_tasks(step["create_tasks"])
    for rel, content in (step.get("write") or {}).items():
        turn.write(rel, "" if content is None else str(content))
    for rel in step.get("delete") or []:
        turn.delete(rel)
    if step.get("commit"):
        msg = step["commit"] if isinstance(step["commit"], str) else None
        turn.commit(msg or f"{run.worker or '-'}: {run.role} call {run.call}")
    claim = step.get("claim")
    if claim:
        if claim == "auto":
            ids = pending_ids(run)[:1]
        else:
            ids = [claim] if isinstance(claim, str) else [str(c) for c in claim]
        if ids:
            parts.append(f"CLAIM({', '.join(ids)})")
    if step.get("merge"):
        parts.append("COMPLETE_AND_READY_FOR_MERGE")
    if step.get("done"):
        parts.append("__DONE__")
    if step.get("verdict"):
        parts.append("VERDICT: " + VERDICTS[step["verdict"]])
    return "\n".join(p for p in parts if p)


def agent_turn(run: Run) -> int:
    if os.environ.get("OOMPA_FAKE_CASSETTE"):
        return replay_turn(run)
    infer_role(run)
    scn = load_scenario()
    run.call = next_call(run)
    step, source = select_step(run, scn)
    run.extra["step"] = source
    turn_rec = {"ts": time.time(), "prompt": run.prompt, "reply": None, "role": run.role}
    turn_rec["call"] = run.call
    assert run.session is not None
    run.session["turns"].append(turn_rec)
    run.save_session()  # the transcript exists from the start, as the real CLIs' do
    turn = Turn(run)
    reply = perform(run, step, turn)
    step = step or {}
    code = int(step.get("exit", 0))
    turn_rec["reply"] = reply
    turn_rec["exit_code"] = code
    run.save_session()
    run.extra.update(
        reply=reply, commits=turn.commits, written=turn.written, denied=turn.denied or None
    )
    err = "".join(n + "\n" for n in turn.notes)
    if step.get("stderr"):
        err += template(str(step["stderr"]), run).rstrip("\n") + "\n"
    shown = reply
    if step.get("signals_on_stderr"):
        err += reply + "\n"
        shown = ""
    if step.get("hang"):
        emit("", err)
        run.log(None, hang=True)
        while True:
            time.sleep(3600)
    if step.get("crash"):
        import signal

        emit("", err)
        name = str(step["crash"]).upper()
        sig = getattr(signal, name if name.startswith("SIG") else "SIG" + name)
        run.log(-int(sig), crash=name)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(5)
        os._exit(128 + int(sig))
    out = render(run, shown, code)
    mode = step.get("output")
    if mode == "malformed":  # cut mid-way, never at a line or object boundary
        out = out[: max(1, len(out) // 2)].rstrip("\n")
        out = out[:-1] if out.endswith(("}", "]")) and len(out) > 1 else out
    if run.extra.get("output_last_message"):
        atomic_write(os.path.join(run.cwd, run.extra["output_last_message"]), reply)
    if isinstance(mode, str) and mode.startswith("huge:"):
        emit_filler(int(mode[5:]))
    emit(out, err)
    return code


# --------------------------------------------------------------------------------------------
# Replay of a cassette (OOMPA_FAKE_CASSETTE): pytest_oompa/offline/cassette.py does the matching
# --------------------------------------------------------------------------------------------

_CASSETTE_MODULE = None


def cassette_module():
    """``pytest_oompa/offline/cassette.py``, loaded by path: the fakes run without site-packages,
    and that module imports only the standard library. A source checkout has it at
    ``../pytest_oompa/offline/cassette.py``, an installed wheel at ``../offline/cassette.py``."""
    global _CASSETTE_MODULE
    if _CASSETTE_MODULE is None:
        import importlib.util

        parent = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
        for path in (
            os.path.join(parent, "pytest_oompa", "offline", "cassette.py"),
            os.path.join(parent, "offline", "cassette.py"),
        ):
            if os.path.isfile(path):
                spec = importlib.util.spec_from_file_location("_oompa_cassette", path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules["_oompa_cassette"] = module
                spec.loader.exec_module(module)
                _CASSETTE_MODULE = module
                break
        else:
            raise BadCassette(f"pytest_oompa/offline/cassette.py not found next to {parent}")
    return _CASSETTE_MODULE


def load_cassette() -> dict:
    cas = cassette_module()
    try:
        return cas.load(os.environ["OOMPA_FAKE_CASSETTE"])
    except cas.CassetteError as e:
        raise BadCassette(str(e)) from None


def version_line(harness: str) -> str:
    """``--version``: the recorded CLI's version when replaying a cassette that has it."""
    if os.environ.get("OOMPA_FAKE_CASSETTE"):
        recorded = (load_cassette().get("harness-versions") or {}).get(harness)
        if recorded:
            return str(recorded)
    return VERSIONS[harness]


def replay_turn(run: Run) -> int:
    """Play back the recorded call instead of a scenario step: same output (session ids, swarm
    id and paths mapped to this run's), same file changes and commits, same exit; a call that
    is not the recorded one exits REPLAY_MISMATCH with a unified diff on stderr."""
    infer_role(run)
    data = load_cassette()
    cas = cassette_module()
    try:
        rep = cas.replay(
            data,
            harness=run.harness,
            argv=[sys.argv[0], *run.argv],
            cwd=run.cwd,
            prompt=run.prompt or "",
            model=run.model,
            session_id=run.session_id,
            state_dir=state_dir(),
        )
    except cas.ReplayMismatch as m:
        run.call = int(m.key.rsplit("/", 1)[-1])
        run.extra.update(step="replay", replay=m.key, mismatch=m.message)
        emit("", m.report())
        return REPLAY_MISMATCH
    run.call = int(rep.key.rsplit("/", 1)[-1])
    reply = rep.call.get("reply")
    code = rep.exit_code
    if run.session is not None:
        turn = {"ts": time.time(), "prompt": run.prompt, "reply": reply, "role": run.role}
        turn.update(call=run.call, exit_code=code)
        run.session["turns"].append(turn)
        run.save_session()
    changes = rep.call.get("changes") or {}
    run.extra.update(
        step="replay",
        replay=rep.key,
        reply=reply,
        commits=[c.get("message", "").strip() for c in changes.get("commits") or []],
    )
    emit(rep.stdout, rep.stderr)
    if code is not None and code >= 0:
        return code
    if code is None:  # the recorded CLI could not even start: nothing to play back
        emit("", f"oompa replay: {rep.key} was recorded as: {rep.failure}\n")
        return 127
    if rep.failure.startswith(("timeout", "stalled", "stopped")):  # killed from outside
        run.log(None, hang=True)
        while True:
            time.sleep(3600)
    import signal

    run.log(code, crash=signal.Signals(-code).name)
    if -code not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    time.sleep(5)
    os._exit(128 - code)


# --------------------------------------------------------------------------------------------
# Output shapes (SPEC-harnesses.md "structured output")
# --------------------------------------------------------------------------------------------


def _usage(run: Run, reply: str) -> tuple[int, int, float]:
    history = sum(len(t.get("prompt") or "") for t in (run.session or {}).get("turns", []))
    inp, outp = history // 4 + 1, len(reply) // 4 + 1
    return inp, outp, round(inp * 3e-6 + outp * 15e-6, 6)


def _iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def render(run: Run, reply: str, code: int) -> str:
    import json

    def line(obj: dict) -> str:
        return json.dumps(obj, ensure_ascii=False) + "\n"

    h, fmt, sid = run.harness, run.fmt, run.session_id
    inp, outp, cost = _usage(run, reply)
    ms = int((time.monotonic() - _T0) * 1000)
    model = run.model or {"claude": "claude-sonnet-4-5", "codex": "gpt-5-codex"}.get(h, "")
    failed = code != 0
    if h == "claude":
        result = {
            "type": "result",
            "subtype": "error_during_execution" if failed else "success",
            "is_error": failed,
            "duration_ms": ms,
            "duration_api_ms": ms,
            "num_turns": 1,
            "result": reply,
            "stop_reason": "end_turn",
            "session_id": sid,
            "total_cost_usd": cost,
            "usage": {
                "input_tokens": inp,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": outp,
                "service_tier": "standard",
            },
            "modelUsage": {
                model: {"inputTokens": inp, "outputTokens": outp, "costUSD": cost},
            },
            "permission_denials": [],
            "uuid": new_uuid(),
        }
        if fmt == "json":
            return line(result)
        if fmt == "stream-json":
            init = {
                "type": "system",
                "subtype": "init",
                "cwd": run.cwd,
                "session_id": sid,
                "model": model,
                "permissionMode": "bypassPermissions" if run.auto else "default",
                "tools": [],
                "uuid": new_uuid(),
            }
            msg = {
                "type": "assistant",
                "message": {
                    "id": "msg_" + os.urandom(12).hex(),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": reply}],
                    "stop_reason": None,
                    "usage": {"input_tokens": inp, "output_tokens": outp},
                },
                "parent_tool_use_id": None,
                "session_id": sid,
                "uuid": new_uuid(),
            }
            return line(init) + line(msg) + line(result)
        return reply + "\n" if reply else ""
    if h == "codex":
        if fmt != "json":
            banner = (
                f"OpenAI Codex v{VERSIONS['codex'].split()[-1]} (research preview)\n--------\n"
                f"workdir: {run.workdir}\nmodel: {model}\nsession id: {sid}\n--------\n"
                f"user\n{run.prompt}\n\ncodex\n{reply}\ntokens used\n{inp + outp}\n"
            )
            sys.stderr.write(banner)
            return reply + "\n" if reply else ""
        out = line({"type": "thread.started", "thread_id": sid}) + line({"type": "turn.started"})
        if reply:
            item = {"id": "item_0", "type": "agent_message", "text": reply}
            out += line({"type": "item.completed", "item": item})
        if failed:
            message = f"fake codex: scripted exit {code}"
            out += line({"type": "error", "message": message})
            return out + line({"type": "turn.failed", "error": {"message": message}})
        usage = {"input_tokens": inp, "cached_input_tokens": 0, "output_tokens": outp}
        return out + line({"type": "turn.completed", "usage": usage})
    if h == "opencode":
        if fmt != "json":
            return reply.strip() + "\n" if reply.strip() else ""
        now = int(time.time() * 1000)
        mid = opencode_id("msg")

        def part(kind: str, **kw: object) -> dict:
            return {
                "id": opencode_id("prt"),
                "sessionID": sid,
                "messageID": mid,
                "type": kind,
                **kw,
            }

        def event(kind: str, **kw: object) -> str:
            return line(
                {"type": kind, "timestamp": int(time.time() * 1000), "sessionID": sid, **kw}
            )

        out = event("step_start", part=part("step-start"))
        if reply:
            out += event("text", part=part("text", text=reply, time={"start": now, "end": now}))
        if failed:
            err = {"name": "UnknownError", "data": {"message": f"fake opencode: exit {code}"}}
            out += event("error", error=err)
        tokens = {"input": inp, "output": outp, "reasoning": 0, "cache": {"read": 0, "write": 0}}
        out += event(
            "step_finish", part=part("step-finish", reason="stop", cost=cost, tokens=tokens)
        )
        return out
    # gemini
    tokens = {
        "input": inp,
        "prompt": inp,
        "candidates": outp,
        "total": inp + outp,
        "cached": 0,
        "thoughts": 0,
        "tool": 0,
    }
    stats = {
        "models": {
            model: {
                "api": {"totalRequests": 1, "totalErrors": int(failed), "totalLatencyMs": ms},
                "tokens": tokens,
            }
        },
        "tools": {
            "totalCalls": 0,
            "totalSuccess": 0,
            "totalFail": 0,
            "totalDurationMs": 0,
            "totalDecisions": {"accept": 0, "reject": 0, "modify": 0, "auto_accept": 0},
            "byName": {},
        },
        "files": {"totalLinesAdded": 0, "totalLinesRemoved": 0},
    }
    error = {"type": "Error", "message": f"fake gemini: exit {code}", "code": code}
    if fmt == "json":
        obj: dict = {"session_id": sid, "response": reply, "stats": stats}
        if failed:
            obj["error"] = error
        return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    if fmt == "stream-json":
        out = line({"type": "init", "timestamp": _iso(), "session_id": sid, "model": model})
        out += line({"type": "message", "timestamp": _iso(), "role": "user", "content": run.prompt})
        if reply:
            out += line(
                {
                    "type": "message",
                    "timestamp": _iso(),
                    "role": "assistant",
                    "content": reply,
                    "delta": True,
                }
            )
        res: dict = {
            "type": "result",
            "timestamp": _iso(),
            "status": "error" if failed else "success",
            "stats": {
                "total_tokens": inp + outp,
                "input_tokens": inp,
                "output_tokens": outp,
                "cached": 0,
                "input": inp,
                "duration_ms": ms,
                "tool_calls": 0,
            },
        }
        if failed:
            res["error"] = error
        return out + line(res)
    return reply + "\n" if reply else ""


def emit_filler(n: int) -> None:
    row = b"x" * 1023 + b"\n"
    out = sys.stdout.buffer
    try:
        while n > 0:
            chunk = row[-n:] if n < len(row) else row
            out.write(chunk)
            n -= len(chunk)
        out.flush()
    except BrokenPipeError:
        pass


def emit(out: str = "", err: str = "") -> None:
    try:
        if err:
            sys.stderr.write(err)
            sys.stderr.flush()
        if out:
            sys.stdout.write(out)
            sys.stdout.flush()
    except BrokenPipeError:
        pass


def main(harness: str) -> None:
    import signal

    run = Run(harness, sys.argv[1:])

    def on_signal(signum: int, _frame: object) -> None:
        run.log(-signum, killed=signal.Signals(signum).name)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        code = HANDLERS[harness](run)
    except Refuse as r:
        emit(r.stdout, r.stderr)
        run.extra["refused"] = ((r.stderr or r.stdout).strip().splitlines() or [""])[0]
        code = r.code
    except BadScenario as e:
        emit("", f"oompa fake {harness}: bad scenario: {e}\n")
        run.extra["refused"] = f"bad scenario: {e}"
        code = BAD_SCENARIO
    except BadCassette as e:
        emit("", f"oompa fake {harness}: bad cassette: {e}\n")
        run.extra["refused"] = f"bad cassette: {e}"
        code = BAD_SCENARIO
    except Exception as e:  # a bug in the fake must not pass for the CLI's own exit 1
        import traceback

        emit("", f"oompa fake {harness}: internal error\n" + traceback.format_exc())
        run.extra["internal_error"] = repr(e)
        code = INTERNAL_ERROR
    run.log(code)
    sys.exit(code)
