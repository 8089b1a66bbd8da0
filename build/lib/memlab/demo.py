"""``make demo`` / ``python -m memlab.demo``: the whole story on 2 CPU cores.

1. train a 2-layer TinyMem on ``increment`` data with noised rows (``experiment=demo``);
2. print memorization and accuracy per distribution;
3. unlearn the memorized rows with BalancedSubnet (the paper's headline method) at the demo preset;
4. print a before/after table and one final line
   ``demo: mem_before=<p> acc_before=<p> mem_after=<p> acc_after=<p>`` (percent).

``ckpt=<path>`` skips training and unlearns an existing demo checkpoint; ``train_overrides`` and
``unlearn_overrides`` pass Hydra overrides to the two runs (``conf/demo.yaml``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra import compose
from omegaconf import DictConfig, open_dict

from memlab import train
from memlab.runs import entry_point, output_dir
from memlab.unlearn import runner as unlearn_runner

log = logging.getLogger(__name__)


def composed(name: str, overrides: list[str], out: Path) -> DictConfig:
    """A task's config (inside the demo's own Hydra app) writing into ``out``."""
    cfg = compose(name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for h in header:
        table.add_column(h, justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def distributions(metrics: dict) -> list[str]:
    return [k.removeprefix("util/acc/") for k in metrics if k.startswith("util/acc/")]


def train_demo(overrides: list[str], out: Path) -> Path:
    cfg = composed("train", ["experiment=demo", "~callbacks.progress_bar", *overrides], out)
    metrics = train.run(cfg)
    rows = [["memorized noised rows (%)", f"{metrics['mem/perc']:.1f}"]]
    rows.append(["evaluable noised rows", f"{metrics['mem/n_eval']:.0f}"])
    rows += [
        [f"accuracy, distribution {d} (%)", f"{metrics[f'util/acc/{d}']:.2f}"]
        for d in distributions(metrics)
    ]
    print_table(f"trained TinyMem ({metrics['cost/seconds']:.0f} s)", ["metric", "value"], rows)
    return out / "checkpoints" / "last.ckpt"


def print_unlearning(m: dict[str, Any]) -> None:
    before = {k.removeprefix("before/"): v for k, v in m.items() if k.startswith("before/")}
    names = ["mem/perc", "mem/perc_clean", "util/acc_mean"]
    names += [f"util/acc/{d}" for d in distributions(before)]
    rows = [[n, f"{m['before/' + n]:.2f}", f"{m['after/' + n]:.2f}"] for n in names if n in before]
    title = (
        f"BalancedSubnet unlearning ({m.get('cost/seconds', 0):.1f} s, "
        f"{int(m.get('edit/n_changed', 0))} weights masked)"
    )
    print_table(title, ["metric", "before", "after"], rows)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train (unless ``ckpt``), unlearn with the demo's BalancedSubnet preset, print the tables."""
    root = output_dir(cfg)
    ckpt = Path(cfg.ckpt) if cfg.ckpt else train_demo(list(cfg.train_overrides), root / "train")
    preset = list(composed("train", ["experiment=demo"], root).get("demo_unlearn", []))
    overrides = ["unlearn=balanced_subnet", f"ckpt={ckpt}", *preset, *cfg.unlearn_overrides]
    m = unlearn_runner.run(composed("unlearn", overrides, root / "unlearn"))
    print_unlearning(m)
    print(
        f"demo: mem_before={m['before/mem/perc']:.1f} acc_before={m['before/util/acc_mean']:.2f} "
        f"mem_after={m['after/mem/perc']:.1f} acc_after={m['after/util/acc_mean']:.2f}"
    )
    return m


main = entry_point("demo", run)

if __name__ == "__main__":
    main()
