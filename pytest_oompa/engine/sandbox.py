"""The opt-in sandbox: every harness call under bubblewrap (``"sandbox": "bwrap"``).

An agent runs shell commands; without a sandbox a write outside its worktree lands (and is
only caught after the call). Under bubblewrap the whole filesystem is read-only except what the
call needs to write, so such a write fails inside the agent, where it can see the error:

- the call's working directory (its worktree; the project root for the planner and probes);
- the repository's git dir, so it can commit (a worktree's ``.git`` file points into
  ``<repo>/.git/worktrees/<name>``; objects and refs live in ``<repo>/.git``);
- the harness's HOME and config folders: ``HOME``, the ``XDG_*`` folders, any ``*_HOME`` or
  ``*_CONFIG_DIR`` variable (``CODEX_HOME``, ``CLAUDE_CONFIG_DIR``), and the fakes' state
  folder and log (``OOMPA_FAKE_STATE``, ``OOMPA_FAKE_LOG``);
- a private, empty ``/tmp``. What the call must *read* under ``/tmp`` (a scenario file, the
  folder of the fakes' wrappers, any path named in its environment or argv) is bound back
  read-only.

The project root is always bound read-only (then its ``.git`` and the worktree writable again):
a project usually lives inside HOME, which is writable, and a write into the root must still
fail. A HOME that *is* the project root stays read-only. The planner and the probes run in the
root itself, so for them it is writable.

``/proc`` and ``/dev`` are set up fresh; the network is left as it is (agents talk to their
model APIs); no new session (a sandboxed call stays in its process group, which the engine
kills at the end of the call) and no new PID namespace (the engine's sweep of what a call left
behind sees every process). ``--die-with-parent``: nothing sandboxed outlives the engine.

``wrap`` builds the argv and is a pure function; ``Sandbox.command`` gathers the paths of one
call (reading the worktree's ``.git`` file, creating a missing state folder) and calls it.
Bubblewrap needs Linux and user namespaces (or root): ``problem()`` says why it cannot run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_oompa.core import paths

BWRAP = "bwrap"
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap)"
PRIVATE = Path("/tmp")  # replaced by an empty tmpfs in the sandbox
# Folders a harness keeps its configuration, sessions and caches in.
HOME_VARS = (
    "HOME",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    "OOMPA_FAKE_STATE",
)
HOME_SUFFIXES = ("_HOME", "_CONFIG_DIR")
FILE_VARS = ("OOMPA_FAKE_LOG",)  # files a harness appends to: the file is bound, not its folder
CHECK_TIMEOUT = 10.0
# The mounts every sandboxed call gets, also what the preflight check tries.
BASE_MOUNTS = ("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", str(PRIVATE))


def wrap(
    argv: Sequence[str],
    *,
    bwrap: str,
    cwd: Path,
    writable: Iterable[Path],
    readable: Iterable[Path] = (),
) -> tuple[str, ...]:
    """``argv`` under bubblewrap: everything read-only but ``writable``, a private /tmp in
    which ``readable`` is bound back read-only. Mounts go outermost first, so a writable
    folder inside a readable one (a worktree inside the project) stays writable."""
    rw = {Path(p) for p in writable}
    ro = {Path(p) for p in readable} - rw
    mounts = sorted(
        [(p, "--bind") for p in rw] + [(p, "--ro-bind") for p in ro],
        key=lambda m: (len(m[0].parts), str(m[0])),
    )
    out = [bwrap, "--die-with-parent", *BASE_MOUNTS]
    kept: list[tuple[Path, str]] = []
    for path, kind in mounts:
        # Inside a folder already mounted the same way: nothing to add.
        inner = [k for p, k in kept if p in path.parents]
        if inner and inner[-1] == kind:
            continue
        kept.append((path, kind))
        out += [kind, str(path), str(path)]
    return (*out, "--chdir", str(cwd), "--", *argv)


def git_dirs(cwd: Path) -> list[Path]:
    """The git folders a commit in ``cwd`` writes to: its own (``.git``, or the worktree's
    admin folder) and the repository's common one (objects, refs)."""
    dot_git = cwd / ".git"
    if dot_git.is_dir():
        return [dot_git]
    try:
        text = dot_git.read_text(encoding="utf-8")
    except OSError:
        return []
    if not text.startswith("gitdir:"):
        return []
    own = (cwd / text.partition(":")[2].strip()).resolve()
    try:
        common = (own / (own / "commondir").read_text(encoding="utf-8").strip()).resolve()
    except OSError:
        return [own]
    return [own, common]


def project_root(dirs: Sequence[Path]) -> Path | None:
    """The working tree a ``<root>/.git`` belongs to."""
    common = dirs[-1] if dirs else None
    return common.parent if common is not None and common.name == ".git" else None


def home_paths(env: Mapping[str, str]) -> tuple[list[Path], list[Path]]:
    """(folders, files) named by the environment that a harness writes to."""
    folders = [
        Path(v)
        for k, v in env.items()
        if (k in HOME_VARS or k.endswith(HOME_SUFFIXES)) and os.path.isabs(v)
    ]
    files = [Path(env[k]) for k in FILE_VARS if os.path.isabs(env.get(k, ""))]
    return folders, files


def named_paths(argv: Sequence[str], env: Mapping[str, str]) -> list[Path]:
    """Existing absolute paths in the argv and the environment (``PATH`` split): what a call
    may need to read, and so to see again under the private /tmp."""
    words = [a for a in argv if a.startswith("/") and "\n" not in a and len(a) < 4096]
    for value in env.values():
        words += [p for p in value.split(os.pathsep) if p.startswith("/") and len(p) < 4096]
    if argv:
        words += _script_needs(argv[0])
    return [Path(w) for w in dict.fromkeys(words) if os.path.exists(w)]


def _script_needs(program: str) -> list[str]:
    """What a script named as the program reads besides itself: its ``#!`` interpreter and,
    for the bundled fakes' wrappers, the fakes' folder (a project or a virtualenv under /tmp
    would otherwise vanish behind the private /tmp)."""
    try:
        with open(program, "rb") as f:
            head = f.read(512)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    line = head[2:].split(b"\n", 1)[0].decode(errors="replace").split()
    needs = line[:1]
    if b"import _fake" in head:
        needs.append(str(paths.fake_harnesses_dir()))
    return needs


def hidden(path: Path) -> bool:
    return path == PRIVATE or PRIVATE in path.parents


@dataclass(frozen=True)
class Sandbox:
    """How harness calls are wrapped. ``bwrap``: the binary, None when it is not on PATH."""

    bwrap: str | None

    @classmethod
    def named(cls, kind: str, path: str | None = None) -> Sandbox | None:
        """The sandbox a config names (``none``: no sandbox)."""
        if kind == "none":
            return None
        return cls(shutil.which(BWRAP, path=path))

    def problem(self) -> str | None:
        """Why this sandbox cannot run here, or None."""
        if self.bwrap is None:
            return f"the sandbox needs bubblewrap ('{BWRAP}' is not on PATH): {INSTALL_HINT}"
        return check_bwrap(self.bwrap)

    def command(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[str, ...]:
        """The argv of one call in the sandbox. Creates a missing state folder or log file
        first: bound where it is, it must exist (else it would land in the private /tmp)."""
        assert self.bwrap is not None, "problem() first"
        folders, files = home_paths(env)
        # An unusable HOME stays read-only (not bound): the harness will say so.
        for folder in folders:
            with contextlib.suppress(OSError):
                folder.mkdir(parents=True, exist_ok=True)
        for file in files:
            with contextlib.suppress(OSError):
                file.parent.mkdir(parents=True, exist_ok=True)
                file.touch(exist_ok=True)
        dirs = git_dirs(cwd)
        root = project_root(dirs)
        # A HOME that is the project itself stays read-only (the project is); one that holds
        # the project (~/src/app) is writable, and the project is bound back read-only in it.
        writable = [cwd, *dirs, *(f for f in folders if f.resolve() != root), *files]
        writable = [p.resolve() for p in writable if p.exists()]
        readable = [p.resolve() for p in named_paths(argv, env) if hidden(p.resolve())]
        readable += [root] if root else []
        return wrap(argv, bwrap=self.bwrap, cwd=cwd, writable=writable, readable=readable)


@functools.cache
def check_bwrap(bwrap: str) -> str | None:
    """Run ``true`` under the sandbox's own mounts; on failure, say why in a user's terms."""
    try:
        proc = subprocess.run(
            [bwrap, *BASE_MOUNTS, "true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the sandbox cannot start {bwrap}: {exc}"
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    said = lines[-1] if lines else f"exit code {proc.returncode}"
    return f"the sandbox cannot run here: '{bwrap} --ro-bind / / true' failed ({said}); " + (
        userns_hint()
    )


def userns_hint() -> str:
    """Why a user namespace is refused, from the kernel's own switches."""

    def read(path: str) -> str | None:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError:
            return None

    if read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return "unprivileged user namespaces are off (sysctl kernel.unprivileged_userns_clone=1)"
    if read("/proc/sys/user/max_user_namespaces") == "0":
        return "user namespaces are off (sysctl user.max_user_namespaces=0)"
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return (
            "AppArmor restricts unprivileged user namespaces (Ubuntu 24.04+): allow bwrap with "
            "an AppArmor profile, or sysctl kernel.apparmor_restrict_unprivileged_userns=0"
        )
    return (
        "bubblewrap needs user namespaces (or root); in a container, a seccomp profile that "
        "blocks unshare/mount refuses them (docker: --security-opt seccomp=unconfined)"
    )
