"""The fake ``opencode``: only ``opencode run``, parsed like yargs in strict mode.

Its argv grammar (``OPTS``), its refusals (the usage on stderr for an unknown argument, a model
without ``provider/``), how it builds the message (words joined, quoted when they hold a space;
stdin appended), its sessions (``ses_`` ids, scoped by git project; ``--session``,
``--continue``, ``--fork``) and its output (plain text, or ``--format json`` events).
"""

from __future__ import annotations

import os
import time

from ..errors import NOT_EMULATED, Refuse
from ..invocation import Run, find_git
from ..output import emit, json_line, token_usage
from ..parsers import Opt, parse_yargs
from ..replay import version_line
from ..turn import agent_turn

NAME = "opencode"
# SPEC-harnesses.md: the version the contract was verified against.
VERSION = "1.18.33"

# opencode (yargs, strict). Source: anomalyco/opencode (formerly sst/opencode)
# packages/opencode/src/cli/cmd/run.ts (`run [message..]` options, including --auto with the
# hidden aliases --yolo/--dangerously-skip-permissions) and src/index.ts (global --print-logs,
# --log-level, -h/--help, -v/--version; `.strict()` with a fail handler that shows the usage and
# exits 1 on "Unknown argument").
OPTS = (
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


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def opencode_id(prefix: str) -> str:
    """opencode's ids: prefix + 12 hex digits of time + 14 random base62 chars (26 in all)."""
    head = format(int(time.time() * 1000) * 0x1000 & (16**12 - 1), "012x")
    tail = "".join(_B62[b % 62] for b in os.urandom(14))
    return f"{prefix}_{head}{tail}"


USAGE = """opencode run [message..]

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


def handle(run: Run) -> int:
    """Parse and check argv, read the prompt, find or start the session, play the turn."""
    p = parse_yargs(run.argv, OPTS)
    opts = p["opts"]
    if opts.get("version"):
        emit(version_line(NAME, VERSION) + "\n")
        return 0
    if not p["pos"] or p["pos"][0] != "run":
        if p["unknown"]:
            raise Refuse(1, USAGE)
        raise Refuse(NOT_EMULATED, "fake opencode: only `opencode run` is emulated\n")
    if opts.get("help"):
        emit(USAGE)
        return 0
    # index.ts: `.fail()` shows the usage (no message) and exits 1 for unknown arguments and
    # invalid choices.
    if p["unknown"] or p["invalid"]:
        raise Refuse(1, USAGE)
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
    return agent_turn(run, render)


def tool_part(action: dict, now: int) -> dict:
    """A tool call the turn made, as a ``tool`` part: ``write`` with filePath and content, or
    ``bash`` with the command, and its state (output, or the error)."""
    if action["tool"] == "write":
        tool, tool_input = "write", {"filePath": action["path"], "content": action["content"]}
        title, output = os.path.basename(action["path"]), "Wrote file successfully."
    else:
        tool, tool_input = "bash", {"command": action["command"], "description": "fake agent"}
        title, output = action["command"], action["output"]
    state: dict = {"status": "completed", "input": tool_input, "output": output, "title": title}
    if action["denied"] or (action["code"] and action["tool"] == "write"):
        state = {"status": "error", "input": tool_input, "error": action["output"]}
    elif action["tool"] != "write":
        state["metadata"] = {"output": output, "exit": action["code"], "truncated": False}
    state["time"] = {"start": now, "end": now}
    return {"tool": tool, "callID": "call_" + os.urandom(12).hex(), "state": state}


def render(run: Run, reply: str, code: int) -> str:
    """What ``opencode run`` prints: the reply, or JSON events (``--format json``: a step
    with the turn's tool calls, its reply and the step's end)."""
    fmt, sid = run.fmt, run.session_id
    inp, outp, cost = token_usage(run, reply)
    failed = code != 0
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
        return json_line(
            {"type": kind, "timestamp": int(time.time() * 1000), "sessionID": sid, **kw}
        )

    out = event("step_start", part=part("step-start"))
    for action in run.actions:
        out += event("tool_use", part=part("tool", **tool_part(action, now)))
    if reply:
        out += event("text", part=part("text", text=reply, time={"start": now, "end": now}))
    if failed:
        err = {"name": "UnknownError", "data": {"message": f"fake opencode: exit {code}"}}
        out += event("error", error=err)
    tokens = {"input": inp, "output": outp, "reasoning": 0, "cache": {"read": 0, "write": 0}}
    out += event("step_finish", part=part("step-finish", reason="stop", cost=cost, tokens=tokens))
    return out
