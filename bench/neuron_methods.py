"""Timings and effect of the five neuron-level unlearning methods on one trained checkpoint.

For each method: seconds to compute the attribution (as the method's Edit records them), seconds
of the rest of the method (the top-k ablation) and of applying the Edit, and memorization (``mem/perc``) and mean test accuracy before/after at ``--ratio``.
Each method runs with its YAML defaults (``conf/unlearn/<name>.yaml``) plus ``--set`` overrides.

    python bench/neuron_methods.py                         # newest outputs/runs/**/last.ckpt
    python bench/neuron_methods.py --ckpt path/last.ckpt --ratio 0.05 --set slimming.epochs=20
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from memlab.data.build import load_data
from memlab.metrics.evaluate import evaluate_model
from memlab.models.build import load_trained_model, read_checkpoint
from memlab.regularizers.build import attach_test_time
from memlab.unlearn.common import UnlearnContext
from memlab.unlearn.methods import METHODS, NEURON_METHODS

ROOT = Path(__file__).resolve().parents[1]


def newest_checkpoint() -> Path:
    found = sorted(
        (ROOT / "outputs" / "runs").glob("**/last.ckpt"), key=lambda p: p.stat().st_mtime
    )
    if not found:
        raise SystemExit("no outputs/runs/**/last.ckpt: train a model first or pass --ckpt")
    return found[-1]


def method_cfg(name: str, ratio: float, overrides: list[str]):
    cfg = OmegaConf.load(ROOT / "conf" / "unlearn" / f"{name}.yaml")
    mine = [o.split(".", 1)[1] for o in overrides if o.startswith(f"{name}.")]
    return OmegaConf.merge(cfg, {"ratio": ratio}, OmegaConf.from_dotlist(mine))


def bench_method(name, model, data, forget, ctx, eval_cfg, cfg) -> dict:
    work = copy.deepcopy(model)
    start = time.perf_counter()
    edit = METHODS[name].edit(work, forget, forget[:0], cfg, ctx)
    edit.apply(work)
    attribution = edit.hparams["attribution_seconds"]
    edit_seconds = time.perf_counter() - start - attribution
    after, _ = evaluate_model(work, data, eval_cfg)
    return {
        "attr_s": attribution,
        "edit_s": edit_seconds,
        "after": after,
        "changed": edit.n_changed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ckpt", type=Path, default=None, help="memlab last.ckpt (default: newest)"
    )
    parser.add_argument("--ratio", type=float, default=0.05, help="fraction of units per layer")
    parser.add_argument("--methods", nargs="*", default=NEURON_METHODS, help="which methods")
    parser.add_argument("--set", nargs="*", default=[], help="overrides, e.g. slimming.epochs=20")
    args = parser.parse_args()
    ckpt = args.ckpt or newest_checkpoint()
    run_cfg = OmegaConf.create(read_checkpoint(ckpt)["memlab_config"])
    data = load_data(run_cfg)
    model, run_cfg = load_trained_model(ckpt, data)
    attach_test_time(model, run_cfg)  # example-tied dropout's test-time mask
    if torch.cuda.is_available():
        model = model.cuda()
    before, result = evaluate_model(model, data, run_cfg.eval)
    forget = data.artifact.rows[result.memorized & result.evaluable]
    ctx = UnlearnContext(
        prompt_len=run_cfg.eval.prompt_len,
        k=run_cfg.eval.k,
        pad_id=data.pad_id,
        eos_id=data.eos_id,
        seed=int(run_cfg.seed),
    )
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"checkpoint {ckpt}  device {device}  forget rows {len(forget)}  ratio {args.ratio}")
    print(
        f"before: mem/perc {before['mem/perc']:.1f}%  util/acc_mean {before['util/acc_mean']:.2f}%"
    )
    print(
        f"{'method':<22}{'attr s':>9}{'edit s':>9}{'mem % before':>14}{'mem % after':>13}{'acc % after':>13}"
    )
    for name in args.methods:
        cfg = method_cfg(name, args.ratio, args.set)
        r = bench_method(name, model, data, forget, ctx, run_cfg.eval, cfg)
        a = r["after"]
        print(
            f"{name:<22}{r['attr_s']:>9.2f}{r['edit_s']:>9.3f}{before['mem/perc']:>14.1f}"
            f"{a['mem/perc']:>13.1f}{a['util/acc_mean']:>13.2f}"
        )


if __name__ == "__main__":
    main()
