"""The language demo (``experiment=demo_language``) end to end, with the numbers it is judged by.

Trains the 2-layer TinyMem on the offline corpus and prints, per evaluation, memorization per
duplication group (the paper's trend: more copies → more memorization) and the
test perplexity in both definitions (token-weighted and the reference's mean of batch exp-losses).

    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \\
        .venv/bin/python bench/demo_language.py [hydra overrides ...]
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import open_dict  # noqa: E402

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def demo_config(root: Path, overrides: list[str]):
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose(
            "train",
            ["experiment=demo_language", "~callbacks.progress_bar", "results=false", *overrides],
        )
    with open_dict(cfg):
        cfg.paths.root_dir = str(root)
        cfg.paths.output_dir = str(root / "run")
        cfg.paths.cache_dir = str(root / "cache")
    return cfg


def report(history: list[dict], powers: list[int], seconds: float) -> None:
    groups = [f"x{10**p}" for p in powers]
    print(f"\nexperiment=demo_language: {seconds:.0f} s on {torch.get_num_threads()} threads")
    print("epoch  " + "  ".join(f"{g:>7}" for g in groups) + "   n_eval   ppl  ppl_ref")
    for row in history:
        mem = "  ".join(
            f"{row.get(f'mem/perc/dup{g}', float('nan')):6.1f}%" for g in range(len(groups))
        )
        n_eval = "/".join(str(int(row.get(f"mem/n_eval/dup{g}", 0))) for g in range(len(groups)))
        print(
            f"{row['epoch']:>5}  {mem}   {n_eval}  {row['util/ppl/test']:6.1f}  "
            f"{row['util/ppl_ref/test']:6.1f}"
        )


def main(overrides: list[str]) -> None:
    from memlab.data.build import load_data
    from memlab.models.build import build_model
    from memlab.training.setup import make_fit

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # one line per evaluation
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = demo_config(Path(tmp), overrides)
        t0 = time.perf_counter()
        data = load_data(cfg)
        t_data = time.perf_counter() - t0
        torch.manual_seed(cfg.seed)
        fit = make_fit(cfg, data, build_model(cfg.model, data))
        from memlab.data.datamodule import LMDataModule

        t0 = time.perf_counter()
        fit.trainer.fit(fit.module, datamodule=LMDataModule(cfg, data))
        seconds = time.perf_counter() - t0
    print(
        f"data: {data.train.shape[0]} training rows of {data.max_ctx} tokens "
        f"({len(data.artifact)} noised blocks), vocab {data.vocab_size}, built in {t_data:.1f} s"
    )
    report(fit.evaluator.history, list(cfg.artifact.dup_powers), seconds)


if __name__ == "__main__":
    main(sys.argv[1:])
