"""The spend meter: what a swarm's harness calls cost so far, and whether a limit is reached.

Real swarms cost money, and a loop of retries or a runaway worker can spend it all. Every call
is charged, once it ends, to an account (the worker it worked for, else its role: ``planner``,
``probe``) from the CLI's own figures (``CallRecord.cost_usd``, ``input_tokens``,
``output_tokens``); before a call starts, ``check`` refuses it once the swarm's limit or its
worker's limit is reached. Calls in flight are never cut short: a limit is a promise about
which calls start, not about the last cent.

A CLI that reports no cost adds no cost (its calls count by tokens, and are counted as calls
without a cost, so a cost shown is a floor); one that reports no tokens adds no tokens.

The meter is thread-safe. When the swarm's workers run in several processes (pytest-xdist) it
keeps its accounts in a file every process shares, read and written under a cross-process lock,
so the swarm's limit holds for the run as a whole.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from pytest_oompa.core.atomic import atomic_write_text
from pytest_oompa.core.config import LimitsSection, SwarmConfig
from pytest_oompa.core.locks import SharedLock
from pytest_oompa.core.results import CallRecord

SWARM = "swarm"  # the key of the swarm's own limit in the list of limits reached


def usd(amount: float) -> str:
    """``$5.02``; below a dollar up to four decimals (``$0.0472``): a test's budget of cents
    must not read as ``$0.05 of $0.04``."""
    if amount >= 1:
        return f"${amount:,.2f}"
    text = f"{amount:.4f}".rstrip("0")
    return f"${text}{'0' * (2 - len(text.partition('.')[2]))}"


@dataclass(frozen=True)
class Spend:
    """What the calls charged to one account cost."""

    cost_usd: float = 0.0
    tokens: int = 0  # input + output
    calls: int = 0
    calls_without_cost: int = 0  # their CLI reported no cost: cost_usd is a floor

    def plus(self, record: CallRecord) -> Spend:
        tokens = (record.input_tokens or 0) + (record.output_tokens or 0)
        return Spend(
            self.cost_usd + (record.cost_usd or 0.0),
            self.tokens + tokens,
            self.calls + 1,
            self.calls_without_cost + (record.cost_usd is None),
        )

    def __add__(self, other: Spend) -> Spend:
        return Spend(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def describe(self) -> str:
        """``$1.23, 45,678 tokens, 12 calls (3 reported no cost)``."""
        text = f"{usd(self.cost_usd)}, {self.tokens:,} tokens, {self.calls} call(s)"
        if self.calls_without_cost:
            text += f" ({self.calls_without_cost} reported no cost)"
        return text


def over(spend: Spend, limits: LimitsSection) -> str | None:
    """How ``spend`` reached ``limits`` (``$5.02 of $5.00``), or None while it is under."""
    if limits.cost_usd is not None and spend.cost_usd >= limits.cost_usd:
        return f"{usd(spend.cost_usd)} of {usd(limits.cost_usd)}"
    if limits.tokens is not None and spend.tokens >= limits.tokens:
        return f"{spend.tokens:,} tokens of {limits.tokens:,}"
    return None


class SpendLimitReached(Exception):
    """A call was refused: a spend limit is reached. ``reason`` says which and how far."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SpendMeter:
    """The accounts of one swarm and its limits. ``shared``: a file every process of the run
    shares (pytest-xdist), else the accounts live in this process only."""

    def __init__(
        self,
        limits: LimitsSection | None = None,
        worker_limits: Mapping[str, LimitsSection] | None = None,
        *,
        shared: Path | None = None,
    ) -> None:
        self.limits = limits or LimitsSection()
        self.worker_limits = {k: v for k, v in (worker_limits or {}).items() if v.active}
        self.notes: list[str] = []  # what the limits cannot see (preflight fills it in)
        self._shared = shared
        self._lock: SharedLock | threading.Lock = (
            SharedLock(shared.with_name(shared.name + ".lock")) if shared else threading.Lock()
        )
        self._accounts: dict[str, Spend] = {}
        self._reached: dict[str, str] = {}  # SWARM or a worker id -> the reason, when reached

    @classmethod
    def for_config(cls, config: SwarmConfig, shared: Path | None = None) -> SpendMeter:
        return cls(config.limits, {w.id: w.limits for w in config.workers}, shared=shared)

    @property
    def active(self) -> bool:
        return self.limits.active or bool(self.worker_limits)

    # -- the two calls every harness call makes -------------------------------------------------

    def refusal(self, account: str) -> str | None:
        """Why a call for ``account`` may not start (the swarm's limit first), or None."""
        if not self.active:
            return None
        with self._state():
            return self._reached.get(SWARM) or self._reached.get(account)

    def check(self, account: str) -> None:
        """Raise SpendLimitReached when a call for ``account`` may not start."""
        reason = self.refusal(account)
        if reason:
            raise SpendLimitReached(reason)

    def record(self, account: str, record: CallRecord) -> None:
        """Charge a call that ran to ``account``; note any limit it made reached."""
        with self._state():
            spend = self._accounts.get(account, Spend()).plus(record)
            self._accounts[account] = spend
            if SWARM not in self._reached:
                how = over(sum(self._accounts.values(), Spend()), self.limits)
                if how:
                    self._reached[SWARM] = f"spend limit: {how}"
            limits = self.worker_limits.get(account)
            if limits is not None and account not in self._reached:
                how = over(spend, limits)
                if how:
                    self._reached[account] = f"spend limit of {account}: {how}"

    # -- what the end of the run reports --------------------------------------------------------

    def accounts(self) -> dict[str, Spend]:
        with self._state():
            return dict(self._accounts)

    def total(self) -> Spend:
        return sum(self.accounts().values(), Spend())

    def reached(self) -> list[str]:
        """Every limit reached so far, the swarm's first: the run ends failed when any is."""
        with self._state():
            reached = dict(self._reached)
        swarm = reached.pop(SWARM, None)
        return ([swarm] if swarm else []) + [reached[k] for k in sorted(reached)]

    # -- storage --------------------------------------------------------------------------------

    @contextmanager
    def _state(self) -> Iterator[None]:
        """Hold the lock; with a shared file, load the accounts first and save them after."""
        with self._lock:
            if self._shared is None:
                yield
                return
            before = self._load()
            yield
            after = self._dump()
            if after != before:
                atomic_write_text(self._shared, json.dumps(after))

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self._shared.read_text(encoding="utf-8")) if self._shared else {}
        except FileNotFoundError:
            data = {}
        self._accounts = {k: Spend(*v) for k, v in data.get("accounts", {}).items()}
        self._reached = dict(data.get("reached", {}))
        return self._dump()

    def _dump(self) -> dict[str, Any]:
        accounts = {k: list(astuple(v)) for k, v in sorted(self._accounts.items())}
        return {"accounts": accounts, "reached": dict(self._reached)}
