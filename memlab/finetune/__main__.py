"""``python -m memlab.finetune``: fine-tune a trained model on clean data (spec §12).

Examples::

    python -m memlab.finetune finetune=both ckpt=outputs/runs/train/<time>/checkpoints/last.ckpt
    python -m memlab.finetune finetune=clean finetune.inherit_optimizer=false ckpt=...
    python -m memlab.finetune finetune=extra ckpt=... ckpt_path=outputs/runs/finetune/<time>/checkpoints/last.ckpt
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from memlab.finetune.runner import run
from memlab.utils.cli import report_config_errors


@hydra.main(config_path="../../conf", config_name="finetune", version_base="1.3")
def main(cfg: DictConfig) -> float:
    metrics = report_config_errors(run)(cfg)
    return metrics.get("mem/perc", 0.0)


if __name__ == "__main__":
    main()
