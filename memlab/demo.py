"""``make demo`` / ``python -m memlab.demo``: the whole story on 2 CPU cores.

1. train a 2-layer TinyMem on ``increment`` data with noised rows (``experiment=demo``);
2. print memorization and accuracy per distribution;
3. unlearn the memorized rows with BalancedSubnet (the paper's headline method) at the demo preset;
4. print a before/after table and one final line
   ``demo: mem_before=<p> acc_before=<p> mem_after=<p> acc_after=<p>`` (percent).

Extra arguments are Hydra overrides of the training run (e.g. ``trainer.max_epochs=40``);
``ckpt=<path>`` skips training and unlearns an existing demo checkpoint.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from memlab.utils.cli import report_config_errors

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def composed(name: str, overrides: list[str], out: Path) -> DictConfig:
    with initialize_config_dir(CONF, version_base="1.3"):
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


def train(overrides: list[str], out: Path) -> tuple[Path, DictConfig]:
    from memlab.train import run

    cfg = composed("train", ["experiment=demo", "~callbacks.progress_bar", *overrides], out)
    metrics = run(cfg)
    rows = [["memorized noised rows (%)", f"{metrics['mem/perc']:.1f}"]]
    rows.append(["evaluable noised rows", f"{metrics['mem/n_eval']:.0f}"])
    rows += [
        [f"accuracy, distribution {d} (%)", f"{metrics[f'util/acc/{d}']:.2f}"]
        for d in distributions(metrics)
    ]
    print_table(f"trained TinyMem ({metrics['cost/seconds']:.0f} s)", ["metric", "value"], rows)
    return out / "checkpoints" / "last.ckpt", cfg


def unlearn(ckpt: Path, train_cfg: DictConfig | None, out: Path) -> dict:
    from memlab.unlearn.runner import run

    extra = list(train_cfg.get("demo_unlearn", [])) if train_cfg is not None else []
    cfg = composed("unlearn", ["unlearn=balanced_subnet", f"ckpt={ckpt}", *extra], out)
    return run(cfg)


def main() -> None:
    # progress: evaluation lines every `train.eval_every` epochs (the compose API sets up no logging)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("memlab").setLevel(logging.INFO)
    args = sys.argv[1:]
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    root = Path("outputs/runs/demo") / stamp
    ckpt_args = [a for a in args if a.startswith("ckpt=")]
    if ckpt_args:
        ckpt = Path(ckpt_args[0].split("=", 1)[1])
        train_cfg = OmegaConf.create(
            {"demo_unlearn": composed("train", ["experiment=demo"], root).get("demo_unlearn", [])}
        )
    else:
        ckpt, train_cfg = report_config_errors(lambda a: train(a, root))(args)
    m = report_config_errors(lambda c: unlearn(c, train_cfg, root / "unlearn"))(ckpt)
    names = ["mem/perc", "mem/perc_clean", "util/acc_mean"] + [
        f"util/acc/{d}"
        for d in distributions({k[7:]: v for k, v in m.items() if k.startswith("before/")})
    ]
    rows = [
        [n, f"{m['before/' + n]:.2f}", f"{m['after/' + n]:.2f}"]
        for n in names
        if f"before/{n}" in m
    ]
    print_table(
        f"BalancedSubnet unlearning ({m.get('cost/seconds', 0):.1f} s, "
        f"{int(m.get('edit/n_changed', 0))} weights masked)",
        ["metric", "before", "after"],
        rows,
    )
    print(
        f"demo: mem_before={m['before/mem/perc']:.1f} acc_before={m['before/util/acc_mean']:.2f} "
        f"mem_after={m['after/mem/perc']:.1f} acc_after={m['after/util/acc_mean']:.2f}"
    )


if __name__ == "__main__":
    main()
