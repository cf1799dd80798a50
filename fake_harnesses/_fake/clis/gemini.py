"""The fake ``gemini`` (Gemini CLI): yargs argv, workspace trust, ``--resume`` by index or id.

Its argv grammar (``OPTS``), the ``.check()`` conflicts and ``.fail()`` messages of the real
CLI (message, then the help, exit 1), workspace trust (exit 55), how it reads a prompt
(``--prompt`` or the query words, stdin within 0.5 s prepended; nothing: exit 42), its sessions
(scoped by the working directory; ``--session-id``, ``--resume latest|N|id``) and its output
formats (text, json, stream-json).
"""

from __future__ import annotations

import os
import time

from ..errors import NOT_EMULATED, Refuse
from ..invocation import Run, new_uuid
from ..output import emit, iso_now, json_line, token_usage
from ..parsers import Opt, parse_yargs, yargs_unknown_message
from ..replay import version_line
from ..turn import agent_turn

NAME = "gemini"
# SPEC-harnesses.md: the version the contract was verified against.
VERSION = "0.61.0"
DEFAULT_MODEL = ""  # the json stats are keyed by the model; none given: ""

# gemini (yargs, strict). Source: google-gemini/gemini-cli packages/cli/src/config/config.ts
# (`$0 [query..]`; -p/--prompt and -m with nargs 1; -r/--resume with an optional value;
# --session-id with its coerce check; --session-file; --skip-trust; -o with text|json|
# stream-json; the `.check()` conflicts; `.fail()` printing the message then the help, exit 1).
OPTS = (
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


HELP = """Usage: gemini [options] [command]

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


def handle(run: Run) -> int:
    """Parse and check argv, read the prompt, find or start the session, play the turn."""
    try:
        p = parse_yargs(run.argv, OPTS)
    except Refuse as r:
        raise Refuse(1, r.stderr + HELP) from None
    opts = p["opts"]
    if opts.get("help"):
        emit(HELP)
        return 0
    if opts.get("version"):
        emit(version_line(NAME, VERSION) + "\n")
        return 0

    def fail(msg: str) -> Refuse:  # config.ts `.fail()`: the message, then the help, exit 1
        return Refuse(1, msg + "\n" + HELP)

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
    return agent_turn(run, render)


def tool_events(action: dict) -> str:
    """A tool call the turn made: ``tool_use`` (write_file with file_path and content, or
    run_shell_command with the command) and its ``tool_result``."""
    if action["tool"] == "write":
        name, params = "write_file", {"file_path": action["path"], "content": action["content"]}
    else:
        name, params = "run_shell_command", {"command": action["command"]}
    tool_id = f"{name}__{name}_{int(time.time() * 1000)}_{os.urandom(2).hex()}"
    use = {
        "type": "tool_use",
        "timestamp": iso_now(),
        "tool_name": name,
        "tool_id": tool_id,
        "parameters": params,
    }
    result: dict = {"type": "tool_result", "timestamp": iso_now(), "tool_id": tool_id}
    if action["code"]:
        result["status"] = "error"
        result["output"] = action["output"]
        result["error"] = {"type": "TOOL_EXECUTION_ERROR", "message": action["output"]}
    else:
        result["status"] = "success"
        if action["tool"] != "write":  # write_file's result has no display text
            result["output"] = action["output"].rstrip("\n")
    return json_line(use) + json_line(result)


def render(run: Run, reply: str, code: int) -> str:
    """What gemini prints: the reply (text), one JSON object (json), or events (stream-json:
    init, the prompt, the turn's tool calls and results, the reply, the result)."""
    import json

    fmt, sid = run.fmt, run.session_id
    inp, outp, _ = token_usage(run, reply)
    ms = run.elapsed_ms()
    model = run.model or DEFAULT_MODEL
    failed = code != 0
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
        out = json_line({"type": "init", "timestamp": iso_now(), "session_id": sid, "model": model})
        out += json_line(
            {"type": "message", "timestamp": iso_now(), "role": "user", "content": run.prompt}
        )
        for action in run.actions:
            out += tool_events(action)
        if reply:
            out += json_line(
                {
                    "type": "message",
                    "timestamp": iso_now(),
                    "role": "assistant",
                    "content": reply,
                    "delta": True,
                }
            )
        res: dict = {
            "type": "result",
            "timestamp": iso_now(),
            "status": "error" if failed else "success",
            "stats": {
                "total_tokens": inp + outp,
                "input_tokens": inp,
                "output_tokens": outp,
                "cached": 0,
                "input": inp,
                "duration_ms": ms,
                "tool_calls": len(run.actions),
                "models": {
                    model: {
                        "total_tokens": inp + outp,
                        "input_tokens": inp,
                        "output_tokens": outp,
                        "cached": 0,
                        "input": inp,
                    }
                },
            },
        }
        if failed:
            res["error"] = error
        return out + json_line(res)
    return reply + "\n" if reply else ""
