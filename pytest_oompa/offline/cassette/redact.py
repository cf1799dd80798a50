"""Redaction: secrets never reach a cassette.

Anything shaped like a key or a bearer token, and the literal values of the environment's
secret variables, become ``<redacted>`` in every text a cassette keeps (prompt, argv, output,
commit messages, patches); a secret variable's value in a call's ``env`` is replaced whole. The
replay side redacts a live call's argv the same way before comparing it with its recording,
and the wire cassettes (``offline.wire_cassette``) reuse ``Redactor``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"


#: An environment variable whose name contains one of these holds a secret.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
_B = r"(?<![A-Za-z0-9_])"  # not in the middle of a word
SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(_B + r"sk-[A-Za-z0-9][A-Za-z0-9_\-]{10,}"), REDACTED),  # OpenAI, Anthropic
    (re.compile(_B + r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{16,}"), REDACTED),  # GitHub
    (re.compile(_B + r"github_pat_[A-Za-z0-9_]{16,}"), REDACTED),
    (re.compile(_B + r"AIza[0-9A-Za-z_\-]{20,}"), REDACTED),  # Google
    (re.compile(_B + r"xox[abposr]-[A-Za-z0-9\-]{10,}"), REDACTED),  # Slack
    (re.compile(_B + r"AKIA[0-9A-Z]{16}(?![A-Za-z0-9])"), REDACTED),  # AWS access key id
    (re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=\-]{6,}", re.IGNORECASE), r"\1" + REDACTED),
)
_MIN_SECRET_VALUE = 8  # shorter values of secret variables ("1", "true") are not searched for


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Removes secrets from text: anything that looks like a key or a bearer token, and the
    literal values of the given environment's secret variables wherever they appear."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        values = {
            v
            for k, v in (env or {}).items()
            if is_secret_name(k) and len(v) >= _MIN_SECRET_VALUE and not v.startswith(("/", "~"))
        }
        self.values = sorted(values, key=len, reverse=True)

    def text(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern, replacement in SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {k: REDACTED if is_secret_name(k) else self.text(v) for k, v in env.items()}

    def patch(self, patch: str) -> str:
        """A git patch redacted line by line, but its binary hunks (base85 data, whose
        checksum a redaction would break; a key never shows in it as text)."""
        out: list[str] = []
        binary = False
        for line in patch.split("\n"):
            if line.startswith("diff --git "):
                binary = False  # a binary section lasts until the next file
            elif line == "GIT binary patch":
                binary = True
            out.append(line if binary else self.text(line))
        return "\n".join(out)

    def changes(self, changes: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if changes is None:
            return None
        commits = [
            {
                **c,
                "message": self.text(c.get("message") or ""),
                "author": self.deep(c.get("author")),
                "committer": self.deep(c.get("committer")),
                "patch": self.patch(c.get("patch") or ""),
            }
            for c in changes.get("commits") or []
        ]
        return {**changes, "commits": commits, "patch": self.patch(changes.get("patch") or "")}

    def deep(self, value: Any) -> Any:
        """Every string inside ``value`` (dicts, lists) redacted; keys are kept."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value
