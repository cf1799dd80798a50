"""The harness registry: name -> ``HarnessSpec``, built from one module per CLI.

Each built-in CLI is one module of this package (``claude``, ``codex``, ``opencode``,
``gemini``) holding its entry: argv, sessions, environment, its output parser, its real package
and version, and its fake-API recipe. The facts come from SPEC-harnesses.md (checked against the
pinned versions), not from oompa's older argv table. Adding a harness is adding one such entry,
here or from a plugin through the ``pytest_oompa_register_harnesses`` hook.
"""

from __future__ import annotations

from collections.abc import Iterator

from pytest_oompa.harnesses import claude, codex, gemini, opencode
from pytest_oompa.harnesses.spec import HarnessSpec

BUILTIN_HARNESSES: tuple[HarnessSpec, ...] = (claude.SPEC, codex.SPEC, opencode.SPEC, gemini.SPEC)


# What any CLI may need from the environment: its user, locale, home and config folders,
# proxies and certificates, a git identity. Not GIT_DIR and friends (they would point an
# agent's git at another repository), not the parent's secrets.
BASE_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "TZ",
    "TMPDIR",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "XDG_*",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "GIT_AUTHOR_*",
    "GIT_COMMITTER_*",
    "SSH_AUTH_SOCK",
    "OOMPA_*",
)


def env_matches(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


class UnknownHarness(KeyError):
    pass


class HarnessRegistry:
    """Name -> HarnessSpec. A plugin may add or replace entries before the swarm starts."""

    def __init__(self, specs: tuple[HarnessSpec, ...] = BUILTIN_HARNESSES) -> None:
        self._specs: dict[str, HarnessSpec] = {s.name: s for s in specs}

    def register(self, spec: HarnessSpec) -> None:
        if not callable(spec.parser):
            raise ValueError(
                f"harness {spec.name!r}: parser must be a callable (stdout -> ParsedOutput), "
                f"not {spec.parser!r}"
            )
        if not callable(spec.transcript):
            raise ValueError(
                f"harness {spec.name!r}: transcript must be a callable (stdout -> list[Entry]), "
                f"not {spec.transcript!r}"
            )
        self._specs[spec.name] = spec

    def get(self, name: str) -> HarnessSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise UnknownHarness(f"unknown harness {name!r} (known: {known})") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def __iter__(self) -> Iterator[HarnessSpec]:
        return iter(self._specs.values())
