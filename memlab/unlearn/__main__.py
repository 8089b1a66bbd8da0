"""``python -m memlab.unlearn``: unlearn a trained model's memorized rows with one of the eleven
methods, or re-apply a saved Edit.

Examples::

    python -m memlab.unlearn unlearn=balanced_subnet unlearn.ratio=0.05 ckpt=outputs/.../last.ckpt
    python -m memlab.unlearn -m unlearn=glob(*) unlearn.ratio=1e-3,1e-2,5e-2 ckpt=...
    python -m memlab.unlearn apply_edit=outputs/runs/unlearn/<time>/edit.safetensors ckpt=...
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from memlab.unlearn.registry import ELEVEN
from memlab.utils.cli import report_config_errors

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def check_method_choice(argv: list[str]) -> None:
    """``unlearn=<name>`` naming no YAML in conf/unlearn/ ends with one line listing the eleven
    (Hydra's own message is a multi-line listing of the config group)."""
    for arg in argv:
        if not arg.startswith("unlearn="):
            continue
        choice = arg.split("=", 1)[1]
        if any(c in choice for c in "*,([") or (CONF_DIR / "unlearn" / f"{choice}.yaml").is_file():
            continue  # sweeps (glob, lists) are Hydra's business
        print(
            f"memlab: error: unknown unlearning method unlearn={choice}; "
            f"the eleven: {', '.join(ELEVEN)}",
            file=sys.stderr,
        )
        sys.exit(2)


@hydra.main(config_path="../../conf", config_name="unlearn", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float:
    from memlab.unlearn.runner import run

    metrics = report_config_errors(run)(cfg)
    return float(metrics.get("after/mem/perc", metrics.get("before/mem/perc", 0.0)))


def main() -> None:
    check_method_choice(sys.argv[1:])
    hydra_main()


if __name__ == "__main__":
    main()
