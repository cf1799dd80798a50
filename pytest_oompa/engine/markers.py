"""What an agent's reply says: CLAIM(ids), the merge signal, __DONE__, a reviewer verdict.

Signals are read from the reply text the harness parser extracted (never from stderr). Task ids
in a CLAIM are untrusted: the ones that are not valid ids are kept apart as ``invalid`` and are
never used as paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_oompa.engine.tasks import valid_task_id

MERGE_SIGNAL = "COMPLETE_AND_READY_FOR_MERGE"
DONE_SIGNAL = "__DONE__"
MAX_CLAIM_IDS = 100  # a reply asking for more is cut here; the rest count as invalid

_CLAIM = re.compile(r"CLAIM\(([^)]*)\)")
_VERDICT_LINE = re.compile(r"^\W*VERDICT:\s*(APPROVED|NEEDS_CHANGES|REJECTED)\b", re.MULTILINE)
_BARE_APPROVED = re.compile(r"\bAPPROVED\b")
_BARE_REJECTED = re.compile(r"\bREJECTED\b")


@dataclass(frozen=True)
class Signals:
    claims: tuple[str, ...] = ()
    invalid_claims: tuple[str, ...] = ()
    merge: bool = False
    done: bool = False


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
    return Signals(
        claims=tuple(claims),
        invalid_claims=tuple(invalid),
        merge=MERGE_SIGNAL in text,
        done=DONE_SIGNAL in text,
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
