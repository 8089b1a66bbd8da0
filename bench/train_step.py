"""Overhead of memlab's Lightning training step against a bare PyTorch loop on the same model and
batch, plus the effect of glibc malloc tuning and ``torch.compile`` on CPU training.

    python bench/train_step.py [--steps 60] [--layers 2]

Each variant runs in a fresh subprocess (malloc tuning only takes effect at process start); the
ratios compare medians of per-step wall-clock times. The last line is ``train_step: overhead=<ratio>``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MALLOC = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def build(layers: int, ctx: int, batch: int):
    import torch
    from omegaconf import OmegaConf

    from memlab.models.tinymem import build_tinymem

    torch.manual_seed(0)
    cfg = OmegaConf.create(
        dict(n_layer=layers, n_embd=128, n_head=4, n_inner=None, activation="relu", init_scale=0.8)
    )
    model = build_tinymem(cfg, 14, ctx, 10, 11, 13)
    x = torch.randint(0, 14, (batch, ctx))
    return model, x


def bare_times(model, x, steps: int, compile_model: bool) -> list[float]:
    import torch

    from memlab.training.lm_module import sequence_losses

    net = torch.compile(model) if compile_model else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.1)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        logits = net(input_ids=x).logits
        loss = sequence_losses(logits, x, None).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return times


def lightning_times(model, x, steps: int) -> list[float]:
    import pytorch_lightning as pl
    import torch
    from omegaconf import OmegaConf

    from memlab.training.lm_module import LMModule

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.times, self.t0 = [], 0.0

        def on_train_batch_start(self, *args) -> None:
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, *args) -> None:
            self.times.append(time.perf_counter() - self.t0)

    optim = OmegaConf.create(dict(lr=1e-3, betas=[0.9, 0.98], eps=1e-8, weight_decay=0.1))
    module = LMModule(model, optim, pad_id=13)
    batches = [(x, torch.arange(x.shape[0]))] * steps
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    return timer.times


def child(variant: str, steps: int, layers: int) -> None:
    model, x = build(layers, 150, 128)
    warm = 5
    if variant == "lightning":
        times = lightning_times(model, x, steps + warm)
    else:
        times = bare_times(model, x, steps + warm, compile_model=variant == "compiled")
    print(json.dumps({"median": statistics.median(times[warm:])}))


def run_variant(variant: str, steps: int, layers: int, malloc: bool) -> float:
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    if malloc:
        env["GLIBC_TUNABLES"] = MALLOC
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            variant,
            "--steps",
            str(steps),
            "--layers",
            str(layers),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["median"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.steps, args.layers)
    bare = run_variant("bare", args.steps, args.layers, malloc=True)
    lightning = run_variant("lightning", args.steps, args.layers, malloc=True)
    bare_plain = run_variant("bare", args.steps, args.layers, malloc=False)
    compiled = run_variant("compiled", args.steps, args.layers, malloc=True)
    print(f"batch 128 x 150 tokens, {args.layers}-layer TinyMem, median step seconds:")
    print(f"  bare PyTorch, default malloc:  {bare_plain:.4f}")
    print(f"  bare PyTorch, tuned malloc:    {bare:.4f}  (malloc speedup {bare_plain / bare:.2f}x)")
    print(
        f"  torch.compile, tuned malloc:   {compiled:.4f}  (compile speedup {bare / compiled:.2f}x)"
    )
    print(f"  memlab Lightning, tuned malloc:{lightning:.4f}")
    print(f"train_step: overhead={lightning / bare:.3f}")


if __name__ == "__main__":
    main()
