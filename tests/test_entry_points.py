"""Every ``python -m <module>`` the README names runs and answers ``--help``.

The README is the user's map of the command line: a module that moved without the README (or the
README without the module) fails here, not on a user's machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Modules of other projects the README shows (torchrun's launcher) are not ours to check.
FOREIGN = {"torch.distributed.run"}


def readme_modules() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return sorted(set(re.findall(r"python -m ([a-z_][\w.]*)", text)) - FOREIGN)


def test_readme_names_the_stages():
    modules = readme_modules()
    for expected in (
        "tools.slice",
        "gpt_sovits.data.prepare",
        "gpt_sovits.train.s1",
        "gpt_sovits.train.s2v3",
        "clvp.train",
    ):
        assert expected in modules


def test_every_readme_module_answers_help():
    # All at once: each start imports torch, and two cores can overlap that.
    procs = {
        m: subprocess.Popen(
            [sys.executable, "-m", m, "--help"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in readme_modules()
    }
    failed = {}
    for module, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        if proc.returncode != 0 or "usage:" not in out.lower():
            failed[module] = (proc.returncode, err.strip().splitlines()[-1:] if err.strip() else out[:200])
    assert failed == {}
