"""A merged patch on the page: ``diffs/{worker}-{i|c}{N}.patch`` parsed into files and hunks and
rendered as a coloured diff.

The engine keeps git's ``diff main...branch`` output of each merge verbatim (its first MiB, with
a last line ``[oompa: patch cut at ...]`` when it was longer). The page shows it per file: the
file's header lines (``diff --git``, modes, ``index``, ``---``/``+++``), then its hunks, each
line a block of its own whose class says what it is (``da`` added, ``dd`` removed, ``dh`` hunk
header, ``dc`` context), so the colours come from the stylesheet and the strict
Content-Security-Policy needs no inline style. A file is cut after :attr:`PatchCaps.file_lines`
lines and the whole patch after :attr:`PatchCaps.patch_lines`, each cut saying how many lines
it left out; the counts of added and removed lines are always the whole file's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pytest_oompa.report.formatting import plural
from pytest_oompa.report.markup import Element, el

__all__ = ["PatchCaps", "PatchFile", "parse_patch", "render_patch"]

_CUT_NOTE = re.compile(r"\[oompa: patch cut at .*\]")
_GIT_HEADER = re.compile(r"diff --git a/(?P<a>.*) b/(?P<b>.*)")


@dataclass(frozen=True)
class PatchCaps:
    """How much of a patch the page shows."""

    file_lines: int = 400  # hunk lines per file
    patch_lines: int = 2000  # hunk lines of the whole patch (one iteration's merge)


@dataclass
class PatchFile:
    """One file of a patch: its header lines and its hunk lines (hunk headers included)."""

    header: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The file's path after the change (before it, for a deleted file)."""
        for line in self.header:
            if line.startswith("+++ ") and line != "+++ /dev/null":
                return line[4:].removeprefix("b/")
        for line in self.header:
            if line.startswith("--- ") and line != "--- /dev/null":
                return line[4:].removeprefix("a/")
        for line in self.header:
            m = _GIT_HEADER.fullmatch(line)
            if m:
                return m["b"]
        return "(unnamed)"

    @property
    def added(self) -> int:
        return sum(1 for line in self.lines if line.startswith("+"))

    @property
    def removed(self) -> int:
        return sum(1 for line in self.lines if line.startswith("-"))


@dataclass
class Patch:
    files: list[PatchFile]
    preamble: list[str]  # lines before the first file (none in git's output)
    cut_note: str | None  # the engine's "[oompa: patch cut at ...]" line

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)


def parse_patch(text: str) -> Patch:
    """Files and hunks of a unified diff in git's format. Lenient: a line it does not expect
    stays where it is (in a header, or as a line of the hunk it follows)."""
    files: list[PatchFile] = []
    preamble: list[str] = []
    cut_note = None
    current: PatchFile | None = None
    for line in text.splitlines():
        if _CUT_NOTE.fullmatch(line):
            cut_note = line
            continue
        if line.startswith("diff --git ") or (current is None and line.startswith("--- ")):
            # a new file: git's header (a plain unified diff has none: its first ---/+++ pair)
            current = PatchFile(header=[line])
            files.append(current)
        elif current is None:
            preamble.append(line)
        elif line.startswith("@@") or current.lines:
            current.lines.append(line)
        else:
            current.header.append(line)
    return Patch(files, preamble, cut_note)


def _line_class(line: str) -> str:
    if line.startswith("@@"):
        return "dh"
    if line.startswith("+"):
        return "da"
    if line.startswith("-"):
        return "dd"
    if line.startswith("\\"):  # "\ No newline at end of file"
        return "dn"
    return "dc"


def _lines(lines: list[str]) -> Element:
    return el("pre", {"class": "diff"}, [el("span", {"class": _line_class(s)}, s) for s in lines])


def render_patch(text: str, rel: str, caps: PatchCaps = PatchCaps()) -> tuple[Element, str, int]:
    """The patch as page content, a one-line summary (``2 files, +10 -3``) and the number of
    characters it put on the page (for the page's budget)."""
    patch = parse_patch(text)
    summary = f"{plural(len(patch.files), 'file')}, +{patch.added} -{patch.removed}"
    body = el("div", {"class": "patch"})
    used = 0
    shown = 0  # hunk lines shown so far
    if patch.preamble:
        body.append(_lines(patch.preamble[: caps.file_lines]))
    for k, f in enumerate(patch.files):
        room = max(0, min(caps.file_lines, caps.patch_lines - shown))
        if room == 0 and f.lines:
            rest = patch.files[k:]
            lines = sum(len(g.lines) for g in rest)
            body.append(
                el(
                    "p",
                    {"class": "cut"},
                    f"… {plural(len(rest), 'more file')} ({plural(lines, 'line')}) not shown: "
                    f"a patch shows at most {caps.patch_lines} lines; the whole patch is ",
                    el("a", {"href": rel}, rel),
                    ".",
                )
            )
            break
        part = f.lines[:room]
        shown += len(part)
        used += sum(len(s) + 1 for s in f.header + part)
        box = el(
            "div",
            {"class": "pf"},
            el(
                "div",
                {"class": "pfh"},
                el("b", f.path),
                el("span", {"class": "muted"}, f" +{f.added} -{f.removed}"),
            ),
            el("pre", {"class": "diff dmeta"}, "\n".join(f.header)),
            _lines(part) if part else None,
        )
        if len(f.lines) > len(part):
            why = (
                f"a file shows at most {caps.file_lines}"
                if len(part) == caps.file_lines
                else f"the patch's {caps.patch_lines} are shown"
            )
            box.append(
                el(
                    "p",
                    {"class": "cut"},
                    f"… {plural(len(f.lines) - len(part), 'more line')} of this file not "
                    f"shown ({why}).",
                )
            )
        body.append(box)
    if patch.cut_note:
        body.append(
            el(
                "p",
                {"class": "cut"},
                f"The kept patch itself was cut when the run recorded it: {patch.cut_note}",
            )
        )
    if not patch.files and not patch.preamble:
        body.append(el("p", {"class": "muted"}, "The patch is empty."))
    return body, summary, used
