"""The layout's promises: layers import downward only with no cycles (import-linter contracts in
pyproject.toml), and nothing cites a document a user cannot open."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# spelled in pieces so that this file does not match itself
UNOPENABLE = re.compile(
    "|".join(
        [
            r"\.\./" + "shared",
            "DESIGN" + r"\.md",
            "spec" + " §",
            "unlearning-" + r"methods\.md",
            "paper-" + r"results\.md",
            "data-training-" + "regularizers",
        ]
    )  # fmt: skip
)


def test_layers_contract_holds():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_no_citation_of_documents_users_cannot_open():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout
    hits = [
        f"{name}:{number}"
        for name in tracked.split()
        if (ROOT / name).is_file() and not name.startswith(".ci/")
        for number, line in enumerate((ROOT / name).read_text(errors="ignore").splitlines(), 1)
        if UNOPENABLE.search(line)
    ]
    assert hits == []
