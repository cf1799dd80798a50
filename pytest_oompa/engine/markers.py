"""What an agent's reply says: CLAIM(ids), the merge signal, __DONE__, NEEDS_FOLLOWUP (oompa
0.7.3) with its reason, a reviewer verdict.

Signals are read from the reply text the harness parser extracted (never from stderr). Task ids
in a CLAIM are untrusted: the ones that are not valid ids are kept apart as ``invalid`` and are
never used as paths.

NEEDS_FOLLOWUP opens the reply. Read as upstream reads it (anywhere in the text), an agent that
quotes its instructions ("do not output NEEDS_FOLLOWUP again ...") would ask for a follow-up;
so it counts only at the start of a line, after markdown decoration, as a VERDICT line does,
which also keeps a reply that explains itself first ("I tried X.\nNEEDS_FOLLOWUP: ...").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_oompa.engine.tasks import valid_task_id

MERGE_SIGNAL = "COMPLETE_AND_READY_FOR_MERGE"
DONE_SIGNAL = "__DONE__"
FOLLOWUP_SIGNAL = "NEEDS_FOLLOWUP"
MAX_CLAIM_IDS = 100  # a reply asking for more is cut here; the rest count as invalid
MAX_REASON_CHARS = 500  # a short reason: it goes into the follow-up prompt and the records

_CLAIM = re.compile(r"CLAIM\(([^)]*)\)")
_VERDICT_LINE = re.compile(r"^\W*VERDICT:\s*(APPROVED|NEEDS_CHANGES|REJECTED)\b", re.MULTILINE)
_BARE_APPROVED = re.compile(r"\bAPPROVED\b")
_BARE_REJECTED = re.compile(r"\bREJECTED\b")
# At the start of a line, after decoration such as "**", "> ", "- " or "## "; the reason is what
# follows the separator (":", "-", ".", en or em dash), on that line and the next ones.
_FOLLOWUP = re.compile(r"^[^\w\n]*NEEDS_FOLLOWUP\b[*`]*[ \t:.\-\u2013\u2014]*", re.MULTILINE)


@dataclass(frozen=True)
class Signals:
    claims: tuple[str, ...] = ()
    invalid_claims: tuple[str, ...] = ()
    merge: bool = False
    done: bool = False
    needs_followup: bool = False
    followup_reason: str = ""  # what the agent said after NEEDS_FOLLOWUP; may be empty


def followup_reason(text: str) -> str | None:
    """The reason after the first NEEDS_FOLLOWUP that opens a line; None: no such signal."""
    match = _FOLLOWUP.search(text)
    if match is None:
        return None
    reason = text[match.end() :].strip()
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1].rstrip() + "…"
    return reason


def parse_signals(text: str) -> Signals:
    claims: list[str] = []
    invalid: list[str] = []
    for match in _CLAIM.finditer(text):
        for raw in match.group(1).split(","):
            task_id = raw.strip().strip("'\"`")
            if not task_id or task_id in claims:
                continue
            if valid_task_id(task_id) and len(claims) < MAX_CLAIM_IDS:
                claims.append(task_id)
            elif task_id not in invalid:
                invalid.append(task_id)
    reason = followup_reason(text)
    return Signals(
        claims=tuple(claims),
        invalid_claims=tuple(invalid),
        merge=MERGE_SIGNAL in text,
        done=DONE_SIGNAL in text,
        needs_followup=reason is not None,
        followup_reason=reason or "",
    )


def parse_verdict(text: str) -> str:
    """approved | needs-changes | rejected.

    The last ``VERDICT:`` line wins (a reviewer may quote the instructions before answering);
    without one, a bare upper-case APPROVED or REJECTED counts; anything else needs changes.
    """
    lines = _VERDICT_LINE.findall(text)
    if lines:
        return str(lines[-1]).lower().replace("_", "-")
    if _BARE_APPROVED.search(text):
        return "approved"
    if _BARE_REJECTED.search(text):
        return "rejected"
    return "needs-changes"
