"""The fake ``claude`` (Claude Code): Commander.js argv, project-scoped sessions, one result.

Its argv grammar (``OPTS``), the checks the real CLI makes after parsing (print mode, the root
guard, ``--session-id`` with ``--resume``, stream-json needing ``--verbose``), how it reads a
prompt (argument, then stdin within 3 s), its session rules (scoped by the working directory;
``--resume``, ``--continue``, ``--fork-session``) and its output formats (text, json,
stream-json).
"""

from __future__ import annotations

import os

from ..errors import NOT_EMULATED, Refuse
from ..invocation import Run, is_uuid, new_uuid
from ..output import emit, json_line, token_usage
from ..parsers import Opt, parse_commander
from ..replay import version_line
from ..turn import agent_turn

NAME = "claude"
# SPEC-harnesses.md: the version the contract was verified against.
VERSION = "2.1.197 (Claude Code)"
DEFAULT_MODEL = "claude-sonnet-4-5"  # reported when no --model is given

# claude (Commander.js). Sources: `claude --help` of 2.x as reproduced in the CLI reference
# (docs.anthropic.com/claude/docs/claude-code/cli-usage) and the flag table in
# github.com/xsyetopz/claudetto/wiki/Claude-Code-CLI-Flags; --allow-dangerously-skip-permissions
# from the cli.js root guard quoted in h0x91b/dev-3.0#1575 and anthropics/claude-code#58150.
# `-r, --resume [value]` takes an optional value; the tool lists are variadic (`<tools...>`), so
# they swallow a following prompt unless `--` precedes it, as in the real CLI.
OPTS = (
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


def euid() -> int:
    forced = os.environ.get("OOMPA_FAKE_EUID")
    if forced is not None:
        return int(forced)
    return os.geteuid() if hasattr(os, "geteuid") else 1000


def handle(run: Run) -> int:
    """Parse and check argv, read the prompt, find or start the session, play the turn."""
    opts, pos = parse_commander(run.argv, OPTS)
    if opts.get("help"):
        emit("Usage: claude [options] [command] [prompt]\n\nClaude Code (fake)\n")
        return 0
    if opts.get("version"):
        emit(version_line(NAME, VERSION) + "\n")
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
    return agent_turn(run, render)


# The tools a fake turn uses, by claude's names (its init event lists more).
TOOLS = ("Bash", "Edit", "Read", "Write")


def assistant(run: Run, model: str, block: dict, inp: int = 0, outp: int = 0) -> dict:
    """An ``assistant`` event: claude prints each content block as an event of its own."""
    return {
        "type": "assistant",
        "message": {
            "id": "msg_" + os.urandom(12).hex(),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": None,
            "usage": {"input_tokens": inp, "output_tokens": outp},
        },
        "parent_tool_use_id": None,
        "session_id": run.session_id,
        "uuid": new_uuid(),
    }


def tool_events(run: Run, model: str, action: dict) -> str:
    """A tool call the turn made: the ``tool_use`` block (Write with file_path and content,
    or Bash with the command) and the ``user`` event with its ``tool_result``."""
    tool_id = "toolu_" + os.urandom(12).hex()
    if action["tool"] == "write":
        name, tool_input = "Write", {"file_path": action["path"], "content": action["content"]}
        output = action["output"] or f"File created successfully at: {action['path']}"
    else:
        name, tool_input = "Bash", {"command": action["command"], "description": "fake agent"}
        output = action["output"].rstrip("\n")
        if action["code"] and not action["denied"]:
            output = f"Exit code {action['code']}\n{output}".rstrip("\n")
    block = {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}
    result = {
        "tool_use_id": tool_id,
        "type": "tool_result",
        "content": output,
        "is_error": bool(action["code"]),
    }
    user = {
        "type": "user",
        "message": {"role": "user", "content": [result]},
        "parent_tool_use_id": None,
        "session_id": run.session_id,
        "uuid": new_uuid(),
    }
    return json_line(assistant(run, model, block)) + json_line(user)


def render(run: Run, reply: str, code: int) -> str:
    """What claude prints: the reply (text), one result object (json), or the init event,
    the turn's tool calls and results, its reply and the result event (stream-json)."""
    fmt, sid = run.fmt, run.session_id
    inp, outp, cost = token_usage(run, reply)
    ms = run.elapsed_ms()
    model = run.model or DEFAULT_MODEL
    failed = code != 0
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
        return json_line(result)
    if fmt == "stream-json":
        init = {
            "type": "system",
            "subtype": "init",
            "cwd": run.cwd,
            "session_id": sid,
            "tools": list(TOOLS),
            "mcp_servers": [],
            "model": model,
            "permissionMode": "bypassPermissions" if run.auto else "default",
            "apiKeySource": "none",
            "claude_code_version": VERSION.split()[0],
            "uuid": new_uuid(),
        }
        out = json_line(init)
        for action in run.actions:
            out += tool_events(run, model, action)
        if reply:
            out += json_line(assistant(run, model, {"type": "text", "text": reply}, inp, outp))
        result["num_turns"] = 1 + len(run.actions)
        return out + json_line(result)
    return reply + "\n" if reply else ""
