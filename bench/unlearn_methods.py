"""Every unlearning method of the method table at its preset hyperparameters on one checkpoint — the CPU
counterpart of the paper's Table 1 (method, % memorized before → after, mean test accuracy before
→ after, seconds of the edit alone, entries changed).

    python bench/unlearn_methods.py [--ckpt PATH] [--methods a,b] [--set unlearn.epochs=1 ...]

``--ckpt`` defaults to the newest ``outputs/runs/demo*/**/last.ckpt`` (``make demo``). The table is
printed and written as markdown to ``bench/results/unlearn_methods.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "unlearn_methods.md"
COLUMNS = ["method", "% memorized", "mean acc (%)", "seconds", "entries changed"]


def newest_demo_checkpoint() -> Path:
    found = sorted(
        (ROOT / "outputs" / "runs").glob("demo*/**/last.ckpt"), key=lambda p: p.stat().st_mtime
    )
    if not found:
        sys.exit("no demo checkpoint under outputs/runs/demo*/ (run `make demo` or pass --ckpt)")
    return found[-1]


def run_method(name: str, ckpt: Path, extra: list[str], tmp: Path) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from memlab.unlearn.runner import run

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "unlearn", overrides=[f"unlearn={name}", f"ckpt={ckpt}", "results=false", *extra]
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / name)
    return run(cfg)


def table_row(name: str, row: dict) -> list[str]:
    def pair(key: str, fmt: str) -> str:
        before, after = row.get(f"before/{key}"), row.get(f"after/{key}")
        if after is None:
            return f"{before:{fmt}} → (nothing memorized)"
        return f"{before:{fmt}} → {after:{fmt}}"

    return [
        name,
        pair("mem/perc", ".1f"),
        pair("util/acc_mean", ".2f"),
        f"{row.get('cost/seconds', float('nan')):.2f}",
        f"{int(row.get('edit/n_changed', 0)):,}",
    ]


def markdown(rows: list[list[str]], ckpt: Path) -> str:
    lines = [
        f"# Unlearning methods at their presets (`{ckpt}`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on CPU ({os.cpu_count()} cores), "
        "by `bench/unlearn_methods.py`.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None, help="memlab checkpoint to unlearn")
    parser.add_argument("--methods", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every run")
    args = parser.parse_args()
    from memlab.unlearn.methods import METHODS

    names = args.methods.split(",") if args.methods else list(METHODS)
    ckpt = args.ckpt or newest_demo_checkpoint()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            row = table_row(name, run_method(name, ckpt, args.set, Path(tmp)))
            print(" | ".join(row), flush=True)
            rows.append(row)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(markdown(rows, ckpt))
    print(f"\nwritten to {RESULT}")


if __name__ == "__main__":
    main()
