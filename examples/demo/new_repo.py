"""Make a throwaway git repository from the demo template and print its path.

    python examples/demo/new_repo.py [DEST]

DEST defaults to a new temporary folder. The checkout this script lives in is never touched:
the swarm, its worktrees and its runs/ folder all live in DEST.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "template"
IDENTITY = ["-c", "user.name=oompa demo", "-c", "user.email=demo@oompa.invalid"]


def make_repo(dest: Path) -> Path:
    shutil.copytree(TEMPLATE, dest, dirs_exist_ok=True)

    def git(*args: str) -> None:
        subprocess.run(["git", *IDENTITY, *args], cwd=dest, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "demo project")
    return dest


if __name__ == "__main__":
    target = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="oompa-demo-"))
    )
    print(make_repo(target))
