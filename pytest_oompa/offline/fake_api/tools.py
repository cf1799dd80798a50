"""Tool-call resolution: a scenario's neutral tool call as the CLI's own tool call.

A scenario says "run this shell command" or "write this file"; the request says which tools the
CLI offers. The CLI's own write tool is used when offered (else the exact bytes go through its
shell tool with ``printf``), its shell tool with the argument names that tool takes. Which
tools each CLI has, and their arguments, are in ``clis``; this module only chooses.
"""

from __future__ import annotations

import shlex

from pytest_oompa.offline.fake_api.clis import tools_for
from pytest_oompa.offline.fake_api.protocols.base import ConcreteCall
from pytest_oompa.offline.fake_api.requests import RequestView
from pytest_oompa.offline.fake_api.scenario import ToolCall


class NoTool(Exception):
    """The request does not offer a tool this turn needs."""


def resolve_tool_call(call: ToolCall, view: RequestView, call_id: str) -> ConcreteCall:
    """The CLI's own tool for a neutral call: its write tool when offered (else ``printf``
    through its shell tool), its shell tool with the argument names that tool takes."""
    offered = set(view.tools)
    tools = tools_for(view.protocol)
    if call.kind == "write":
        name = next((n for n in tools.write if n in offered), None)
        arguments = tools.write[name](call.path, call.content, view.cwd()) if name else None
        if name is not None and arguments is not None:
            if view.tool_types.get(name) == "custom" and "input" in arguments:
                # A freeform tool (codex's apply_patch, say) takes its input as raw text.
                return ConcreteCall(call_id, name, None, raw_input=str(arguments["input"]))
            return ConcreteCall(call_id, name, arguments)
        # No write tool offered (codex offers apply_patch only for some models), or one that
        # needs the cwd the request does not state: the exact bytes through the shell tool.
        folder = call.path.rsplit("/", 1)[0] if "/" in call.path else ""
        mkdir = f"mkdir -p {shlex.quote(folder)} && " if folder else ""
        quoted = f"printf %s {shlex.quote(call.content)} > {shlex.quote(call.path)}"
        call = ToolCall("shell", command=mkdir + quoted)
    name = next((n for n in tools.shell if n in offered), None)
    if name is None:
        raise NoTool(
            f"the request offers no shell tool (one of {', '.join(tools.shell)}); "
            f"offered: {', '.join(sorted(offered)) or 'none'}"
        )
    return ConcreteCall(call_id, name, tools.shell[name](call.command))
