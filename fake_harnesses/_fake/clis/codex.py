"""The fake ``codex`` (Codex CLI): only ``codex exec`` and ``exec resume``, parsed like clap.

Its argv grammar (``OPTS`` with clap's scopes: root, exec, resume), the conflicts and checks
the real CLI makes (``-c`` without ``=``, a git repository unless ``--skip-git-repo-check``,
``-C``), how it reads a prompt (``-`` or none: stdin; a piped stdin next to a prompt is
appended), its sessions (threads, global; ``resume --last`` by folder) and its output (a
banner on stderr, or ``--json`` events).
"""

from __future__ import annotations

import os
import sys

from ..errors import NOT_EMULATED, Refuse
from ..invocation import Run, find_git, new_uuid
from ..output import emit, json_line, token_usage
from ..parsers import Opt, clap_error, index_options, parse_clap
from ..replay import version_line
from ..turn import agent_turn

NAME = "codex"
# SPEC-harnesses.md: the version the contract was verified against.
VERSION = "codex-cli 0.169.0"
DEFAULT_MODEL = "gpt-5-codex"  # reported when no -m is given

# codex (clap). Source: openai/codex codex-rs/exec/src/cli.rs (exec options, `resume` args;
# `global = true` marks what is also accepted after `resume`), codex-rs/utils/cli/src/
# shared_options.rs (-i, -m, --oss, --local-provider, -p, -s, --dangerously-bypass-approvals-
# and-sandbox alias --yolo, --not-so-yolo, -C/--cd, --add-dir) and config_override.rs
# (`-c/--config key=value`, global, appendable). --enable/--disable are the global feature
# toggles SPEC-harnesses.md uses (`--disable plugins`). Scopes: "g" global (exec and resume),
# "e" exec only (so `-C` after `resume` is refused, as clap does), "r" resume only.
OPTS = (
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
ROOT_DESTS = frozenset(
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
CONFLICTS = (
    ("full_auto", "dangerously_bypass_approvals_and_sandbox"),
    ("full_auto", "not_so_yolo"),
    ("not_so_yolo", "dangerously_bypass_approvals_and_sandbox"),
)
USAGE = {
    "root": "Usage: codex [OPTIONS] [PROMPT]\n       codex [OPTIONS] <COMMAND> [ARGS]",
    "exec": "Usage: codex exec [OPTIONS] [PROMPT]\n       codex exec [OPTIONS] <COMMAND> [ARGS]",
    "resume": "Usage: codex exec resume [OPTIONS] [SESSION_ID] [PROMPT]",
}


def handle(run: Run) -> int:
    """Parse and check argv, read the prompt, find or start the session, play the turn."""
    # The root `codex` command takes -c/--enable/--disable and the shared options only;
    # --json, --skip-git-repo-check etc. belong to `exec`.
    root_index = {n: o for n, o in index_options(OPTS, "ge").items() if o.dest in ROOT_DESTS}
    opts, pos, sub, rest = parse_clap(run.argv, root_index, USAGE["root"], 1, ("exec", "e"))
    if sub is None:
        if opts.get("help") or opts.get("version"):
            emit((version_line(NAME, VERSION) if opts.get("version") else VERSION) + "\n")
            return 0
        raise Refuse(NOT_EMULATED, "fake codex: only `codex exec` is emulated\n")
    opts, pos, sub, rest = parse_clap(
        rest, index_options(OPTS, "ge"), USAGE["exec"], 1, ("resume", "review"), opts
    )
    resume_args: list[str] | None = None
    if sub == "review":
        raise Refuse(NOT_EMULATED, "fake codex: `codex exec review` is not emulated\n")
    if sub == "resume":
        opts, pos, _, _ = parse_clap(rest, index_options(OPTS, "gr"), USAGE["resume"], 2, (), opts)
        resume_args = pos
    if opts.get("help"):
        emit(USAGE["exec"] + "\n")
        return 0
    if opts.get("version"):
        emit(VERSION.replace("cli", "exec") + "\n")
        return 0
    for a, b in CONFLICTS:
        if opts.get(a) and opts.get(b):
            names = {o.dest: o.clap for o in OPTS}
            raise clap_error(
                f"the argument '{names[a]}' cannot be used with '{names[b]}'",
                USAGE["resume" if resume_args is not None else "exec"],
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
    return agent_turn(run, render)


def item_events(item_id: str, action: dict) -> str:
    """A tool call the turn made: a ``file_change`` item (apply_patch) for a written file, a
    ``command_execution`` item (started, then completed) for a shell command."""
    if action["tool"] == "write":
        kind = "update" if action.get("append") else "add"
        item = {
            "id": item_id,
            "type": "file_change",
            "changes": [{"path": action["path"], "kind": kind}],
            "status": "failed" if action["code"] else "completed",
        }
        return json_line({"type": "item.completed", "item": item})
    # As codex shows it: the command in double quotes for bash -lc.
    escaped = action["command"].replace("\\", "\\\\").replace('"', '\\"')
    item = {
        "id": item_id,
        "type": "command_execution",
        "command": '/bin/bash -lc "' + escaped + '"',
        "aggregated_output": "",
        "exit_code": None,
        "status": "in_progress",
    }
    out = json_line({"type": "item.started", "item": dict(item)})
    if action["denied"]:
        item.update(status="declined", aggregated_output=action["output"])
    else:
        item.update(
            aggregated_output=action["output"],
            exit_code=action["code"],
            status="failed" if action["code"] else "completed",
        )
    return out + json_line({"type": "item.completed", "item": item})


def render(run: Run, reply: str, code: int) -> str:
    """What ``codex exec`` prints: the reply with a banner on stderr, or ``--json`` events
    (the thread, the turn's tool calls as items, the reply, the turn's end)."""
    fmt, sid = run.fmt, run.session_id
    inp, outp, _ = token_usage(run, reply)
    model = run.model or DEFAULT_MODEL
    failed = code != 0
    if fmt != "json":
        banner = (
            f"OpenAI Codex v{VERSION.split()[-1]} (research preview)\n--------\n"
            f"workdir: {run.workdir}\nmodel: {model}\nsession id: {sid}\n--------\n"
            f"user\n{run.prompt}\n\ncodex\n{reply}\ntokens used\n{inp + outp}\n"
        )
        sys.stderr.write(banner)
        return reply + "\n" if reply else ""
    out = json_line({"type": "thread.started", "thread_id": sid}) + json_line(
        {"type": "turn.started"}
    )
    for n, action in enumerate(run.actions):
        out += item_events(f"item_{n}", action)
    if reply:
        item = {"id": f"item_{len(run.actions)}", "type": "agent_message", "text": reply}
        out += json_line({"type": "item.completed", "item": item})
    if failed:
        message = f"fake codex: scripted exit {code}"
        out += json_line({"type": "error", "message": message})
        return out + json_line({"type": "turn.failed", "error": {"message": message}})
    usage = {"input_tokens": inp, "cached_input_tokens": 0, "output_tokens": outp}
    return out + json_line({"type": "turn.completed", "usage": usage})
