"""Robustness audit of the demo checkpoint, every step timed.

The base model (with its retrain oracle), a clean fine-tune and the eleven unlearning methods at
their presets, each audited by ``memlab.audit`` → one robustness table and one relearning figure.

    python bench/audit_demo.py [--ckpt PATH] [--methods a,b] [--set relearn.steps=50 ...]

``--ckpt`` defaults to the newest ``outputs/runs/demo*/**/last.ckpt``; without one the demo model
is trained first (``experiment=demo``). Writes ``bench/results/audit_demo.md`` and
``bench/results/audit_demo_relearning.png``; the audit rows go to ``<workdir>/results``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import ROOT, compose_cfg, newest

RESULTS = ROOT / "bench" / "results"
TABLE, FIGURE = RESULTS / "audit_demo.md", RESULTS / "audit_demo_relearning.png"


class Clock:
    """Seconds per step, in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    def run(self, name: str, fn):
        start = time.perf_counter()
        result = fn()
        self.steps.append((name, time.perf_counter() - start))
        print(f"[{self.steps[-1][1]:7.1f} s] {name}", flush=True)
        return result


def demo_checkpoint(args, work: Path, clock: Clock) -> Path:
    if args.ckpt:
        return args.ckpt
    found = newest("runs/demo*/**/last.ckpt")
    if found is not None:
        return found
    from memlab.train import run

    cfg = compose_cfg("train", ["experiment=demo", "~callbacks.progress_bar"], work / "train")
    clock.run("train the demo checkpoint", lambda: run(cfg))
    return work / "train" / "checkpoints" / "last.ckpt"


def unlearned_edits(ckpt: Path, names: list[str], work: Path, clock: Clock) -> dict[str, Path]:
    from memlab.unlearn.runner import run

    edits = {}
    for name in names:
        out = work / "unlearn" / name
        cfg = compose_cfg("unlearn", [f"unlearn={name}", f"ckpt={ckpt}", "results=false"], out)
        clock.run(f"unlearn {name}", lambda cfg=cfg: run(cfg))
        edits[name] = out / "edit.safetensors"
    return edits


def clean_finetune(ckpt: Path, work: Path, clock: Clock) -> Path:
    from memlab.finetune.runner import run

    out = work / "finetune"
    overrides = ["finetune=clean", f"ckpt={ckpt}", "results=false", "~callbacks.progress_bar"]
    cfg = compose_cfg("finetune", overrides, out)
    clock.run("fine-tune clean", lambda: run(cfg))
    return out / "checkpoints" / "last.ckpt"


def audit(name: str, overrides: list[str], work: Path, clock: Clock) -> None:
    from omegaconf import open_dict

    from memlab.audit.runner import run

    cfg = compose_cfg("audit", overrides, work / "audit" / name)
    with open_dict(cfg):
        cfg.paths.results_dir = str(work / "results")
    clock.run(f"audit {name}", lambda: run(cfg))


def report(work: Path, ckpt: Path, clock: Clock) -> None:
    from memlab.analysis.robustness import plot_relearning, robustness_table
    from memlab.analysis.tables import markdown
    from memlab.runs import ResultsStore

    rows = ResultsStore(work / "results").load()
    table = robustness_table(rows).drop(columns="ckpt")
    plot_relearning(rows, FIGURE)
    timings = "\n".join(f"| {name} | {seconds:.0f} |" for name, seconds in clock.steps)
    TABLE.write_text(
        f"# Robustness audit of the demo checkpoint (`{ckpt.name}`)\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on CPU ({os.cpu_count()} cores) by "
        f"`bench/audit_demo.py`; relearning figure: `{FIGURE.name}`.\n\n"
        f"{markdown(table)}\n\n| step | seconds |\n|---|---|\n{timings}\n"
    )
    print(TABLE.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None, help="the demo checkpoint")
    parser.add_argument("--methods", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every audit")
    parser.add_argument("--workdir", type=Path, default=None, help="keep outputs here")
    args = parser.parse_args()
    from memlab.unlearn.registry import ELEVEN

    names = args.methods.split(",") if args.methods else list(ELEVEN)
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        ckpt = demo_checkpoint(args, work, clock).resolve()
        common = [f"ckpt={ckpt}", *args.set]
        audit("base", [*common, "oracle=true"], work, clock)
        tuned = clean_finetune(ckpt, work, clock)
        audit(
            "finetune_clean",
            [f"ckpt={tuned}", f"base_ckpt={ckpt}", "label=finetune_clean", *args.set],
            work,
            clock,
        )
        for name, edit in unlearned_edits(ckpt, names, work, clock).items():
            audit(name, [*common, f"edit={edit}"], work, clock)
        report(work, ckpt, clock)


if __name__ == "__main__":
    main()
