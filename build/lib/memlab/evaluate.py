"""``python -m memlab.evaluate ckpt=<path>``: the metrics of a trained checkpoint (spec §10), on the
data it was trained with; writes ``summary.json`` in the run directory and prints the metrics.

    python -m memlab.evaluate ckpt=outputs/runs/train/<time>/checkpoints/last.ckpt eval.suppress_eos=false
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict

from memlab.data.build import load_data
from memlab.errors import ConfigError
from memlab.metrics.evaluate import evaluate_model
from memlab.models.build import load_trained_model, read_checkpoint
from memlab.runs import entry_point, finish


def run(cfg: DictConfig) -> dict[str, float]:
    """Evaluate ``cfg.ckpt`` with its own data and (unless overridden) its own eval settings."""
    if not cfg.get("ckpt"):
        raise ConfigError("ckpt=<path of a memlab checkpoint> is required")
    train_cfg = OmegaConf.create(read_checkpoint(cfg.ckpt)["memlab_config"])
    data = load_data(train_cfg)
    model, _ = load_trained_model(cfg.ckpt, data)
    eval_cfg = cfg.eval if cfg.get("eval") is not None else train_cfg.eval
    metrics, _ = evaluate_model(model, data, eval_cfg)
    with open_dict(cfg):
        cfg.eval = eval_cfg
    finish(cfg, metrics)
    for name, value in sorted(metrics.items()):
        print(f"{name:28s} {value:10.3f}")
    return metrics


main = entry_point("evaluate", run)


if __name__ == "__main__":
    main()
