"""Speed of the memorization check: reference-style generation vs KV-cached generation vs memlab's
teacher-forced check, on one trained TinyMem checkpoint and the same noised rows, in one process.

    python bench/memorization_eval.py [--ckpt outputs/runs/.../last.ckpt] [--epochs 2]

Without ``--ckpt`` it trains a paper-shaped model (increment data, 20,000 main rows, 1,000 noised
rows, 150-token context, 2 layers) for ``--epochs`` epochs first. The last line is
``memorization_eval: speedup_vs_reference=<x> speedup_vs_cached_generate=<y> identical=<true|false>``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from _common import compose_cfg, timed

from memlab.data.build import load_data
from memlab.metrics.memorization import greedy_match, greedy_match_generate, scored_inputs
from memlab.models.build import load_trained_model
from memlab.regularizers.build import attach_test_time


def trained_checkpoint(epochs: int, workdir: Path) -> Path:
    from memlab.train import run

    cfg = compose_cfg(
        "train",
        [
            "model.n_layer=2",
            f"trainer.max_epochs={epochs}",
            f"train.eval_every={epochs}",
            "results=false",
            "~callbacks.progress_bar",
        ],
        workdir,
    )
    run(cfg)
    return workdir / "checkpoints" / "last.ckpt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    ckpt = args.ckpt or trained_checkpoint(args.epochs, Path(tempfile.mkdtemp(prefix="memeval-")))
    from omegaconf import OmegaConf

    from memlab.models.build import read_checkpoint

    cfg = OmegaConf.create(read_checkpoint(ckpt)["memlab_config"])
    data = load_data(cfg)
    model, run_cfg = load_trained_model(ckpt, data)
    attach_test_time(model, run_cfg)  # example-tied dropout's test-time mask
    art, ev = data.artifact, cfg.eval
    n = len(art)
    if n < 500:
        raise SystemExit(f"the checkpoint's data has {n} noised rows; the benchmark needs ≥ 500")
    start = torch.full((n,), ev.prompt_len)
    rows = scored_inputs(art.rows, art.clean, start)
    eos, pad, bs = data.eos_id, data.pad_id, args.batch_size
    t_tf, fast = timed(lambda: greedy_match(model, rows, start, ev.k, [eos], bs), repeat=3)
    t_kv, cached = timed(
        lambda: greedy_match_generate(model, rows, start, ev.k, True, pad, eos, bs), repeat=1
    )
    t_ref, ref = timed(
        lambda: greedy_match_generate(
            model, rows, start, ev.k, True, pad, eos, bs, reference_style=True
        ),
        repeat=1,
    )
    identical = bool(torch.equal(fast, ref) and torch.equal(fast, cached))
    print(
        f"rows={n} context={rows.shape[1]} prompt={ev.prompt_len} k={ev.k} memorized={int(fast.sum())}"
    )
    print(f"reference generate (min_length=max_length={rows.shape[1]}, no KV cache): {t_ref:.2f} s")
    print(f"generate with KV cache, {ev.k} new tokens:                     {t_kv:.2f} s")
    print(f"memlab teacher-forced check:                                 {t_tf:.3f} s")
    print(
        f"memorization_eval: speedup_vs_reference={t_ref / t_tf:.1f} "
        f"speedup_vs_cached_generate={t_kv / t_tf:.1f} identical={str(identical).lower()}"
    )


if __name__ == "__main__":
    main()
