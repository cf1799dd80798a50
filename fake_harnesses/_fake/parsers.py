"""The three argv parser families the real CLIs use: Commander.js, clap and yargs.

Each CLI's argv contract is data (an option table of ``Opt`` in its module under ``clis/``),
parsed here the way the real CLI's parser parses it (Commander for claude, clap for codex,
yargs for opencode and gemini), so that argv a fake accepts is argv the real CLI accepts. A
parser refuses with the real parser's message and exit code (``Refuse``); what a CLI checks
after parsing lives with that CLI.
"""

from __future__ import annotations

from .errors import Refuse


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


def index_options(table: tuple[Opt, ...], scopes: str | None = None) -> dict[str, Opt]:
    out: dict[str, Opt] = {}
    for o in table:
        if scopes is None or o.scope in scopes:
            for n in o.names:
                out[n] = o
    return out


def parse_commander(args: list[str], table: tuple[Opt, ...]) -> tuple[dict, list[str]]:
    """Commander.js semantics: options anywhere, `--` ends options, required values are greedy."""
    index = index_options(table)
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


def clap_error(msg: str, usage: str | None) -> Refuse:
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
                raise clap_error(f"unexpected argument '{a}' found", usage)
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
            raise clap_error(
                f"unexpected argument '{a}' found\n\n  tip: to pass '{a}' as a value, use '-- {a}'",
                usage,
            )
        if o.dest in seen and not o.multi:
            raise clap_error(f"the argument '{o.clap}' cannot be used multiple times", usage)
        seen.add(o.dest)
        if o.kind == "flag":
            if inline is not None:
                raise clap_error(
                    f"unexpected value '{inline}' for '{o.clap}' found; no more were expected",
                    usage,
                )
            opts[o.dest] = True
            continue
        if inline is not None:
            vals = [inline]
        else:
            if i >= len(args) or (args[i].startswith("-") and args[i] != "-"):
                raise clap_error(f"a value is required for '{o.clap}' but none was supplied", None)
            vals = [args[i]]
            i += 1
        if o.kind == "values":  # num_args = 1.., value_delimiter = ','
            while i < len(args) and not args[i].startswith("-"):
                vals.append(args[i])
                i += 1
            vals = [p for v in vals for p in v.split(",")]
        for v in vals:
            if o.choices and v not in o.choices:
                raise clap_error(
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
