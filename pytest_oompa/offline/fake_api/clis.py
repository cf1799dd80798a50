"""Everything the fake model API knows about particular CLIs, in one place.

The rest of the package is protocol-neutral or per wire protocol; these are facts about the real
CLIs themselves: which wire protocol each one speaks, the tools it offers a model (its shell and
file-writing tools, preferred first, and the arguments each takes), and how its system prompt
states the working directory. They are plain data with no import from the package, so that the
harness registry can take them over as they are (one entry per harness).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: A shell tool's arguments for one command.
ShellArguments = Callable[[str], dict[str, Any]]
#: A write tool's arguments for (path relative to the CLI's cwd, content, the CLI's cwd or None);
#: None when the tool cannot take this write (it wants an absolute path and the cwd is unknown).
WriteArguments = Callable[[str, str, str | None], dict[str, Any] | None]


@dataclass(frozen=True)
class CliTools:
    """One CLI as the fake model API talks to it: its wire protocol and its tools."""

    protocol: str
    shell: Mapping[str, ShellArguments]  # tool name -> arguments, preferred first
    write: Mapping[str, WriteArguments] = field(default_factory=dict)


def _absolute(path: str, cwd: str | None) -> str:
    if path.startswith("/") or cwd is None:
        return path
    return cwd.rstrip("/") + "/" + path


def _command(command: str) -> dict[str, Any]:
    return {"command": command}


def _described_command(command: str) -> dict[str, Any]:
    return {"command": command, "description": "oompa fake"}


def _claude_write(path: str, content: str, cwd: str | None) -> dict[str, Any] | None:
    if cwd is None:
        return None
    return {"file_path": _absolute(path, cwd), "content": content}


def _opencode_write(path: str, content: str, cwd: str | None) -> dict[str, Any] | None:
    if cwd is None:
        return None
    return {"filePath": _absolute(path, cwd), "content": content}


def _gemini_write(path: str, content: str, cwd: str | None) -> dict[str, Any] | None:
    return {"file_path": _absolute(path, cwd), "content": content}


def _codex_patch(path: str, content: str, cwd: str | None) -> dict[str, Any] | None:
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    patch = "\n".join(
        ["*** Begin Patch", f"*** Add File: {path}"]
        + ["+" + line for line in lines]
        + ["*** End Patch"]
    )
    # Offered as a freeform (custom) tool, apply_patch takes the patch itself: see tools.py.
    return {"input": patch}


#: harness -> the protocol it speaks and its tools. Codex has named its shell tool several
#: ways across versions; the first one a request offers is used. (The protocol is also each
#: harness's ``Recipe.api`` in the registry; it is repeated here so that this module imports
#: nothing, until the registry takes these facts over.)
HARNESS_TOOLS: Mapping[str, CliTools] = {
    "claude": CliTools(
        "anthropic", shell={"Bash": _described_command}, write={"Write": _claude_write}
    ),
    "codex": CliTools(
        "responses",
        shell={
            "exec_command": lambda command: {"cmd": command},
            "shell_command": _command,
            "shell": lambda command: {"command": ["bash", "-lc", command]},
            "local_shell": _command,
        },
        write={"apply_patch": _codex_patch},
    ),
    "opencode": CliTools(
        "chat", shell={"bash": _described_command}, write={"write": _opencode_write}
    ),
    "gemini": CliTools(
        "gemini", shell={"run_shell_command": _command}, write={"write_file": _gemini_write}
    ),
}


def tools_for(protocol: str) -> CliTools:
    """The tools of the CLI speaking ``protocol`` (none for a protocol no CLI speaks)."""
    for tools in HARNESS_TOOLS.values():
        if tools.protocol == protocol:
            return tools
    return CliTools(protocol, shell={})


#: How each CLI's system prompt (or first messages) states its working directory.
CWD_PATTERNS = (
    re.compile(r"<cwd>([^<\n]+)</cwd>"),  # codex environment_context
    re.compile(r"Primary working directory: ?([^\n]+)"),  # claude
    re.compile(r"Working directory: ?([^\n]+)"),  # claude (older), opencode
    re.compile(r"I'm currently working in the directory: ?([^\n]+)"),  # gemini (older)
    re.compile(r"Workspace Directories:\**\n\s*- (/[^\n]+)"),  # gemini
    re.compile(r"current working directory(?: is)?:? ?(/[^\n]+)", re.IGNORECASE),
)
