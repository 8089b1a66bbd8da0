"""``python -m memlab.sweep experiment=<grid>``: run one of the paper's grids (or any grid preset).

Examples::

    python -m memlab.sweep experiment=paper/unlearn_tinymem dry_run=true
    python -m memlab.sweep experiment=paper/unlearn_tinymem sweep.context.ckpt=outputs/.../last.ckpt
    python -m memlab.sweep experiment=paper/train_tinymem hydra/launcher=joblib hydra.launcher.n_jobs=2
    python -m memlab.sweep experiment=paper/unlearn_pythia hydra/launcher=slurm

Re-running the same command resumes the sweep: runs whose config hash is done in the results store
are skipped (see docs/analysis.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from memlab.runs import entry_point
from memlab.sweeps.launch import launch_plan
from memlab.sweeps.plan import build_plan, describe

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, int]:
    """Expand ``cfg.sweep`` and print it (``dry_run``) or launch its unfinished runs."""
    plan = build_plan(OmegaConf.to_container(cfg.sweep, resolve=True))  # type: ignore[arg-type]
    if cfg.dry_run:
        print(describe(plan, show=int(cfg.show), by=cfg.get("count_by")))
        return {"planned": len(plan)}
    outcome = launch_plan(
        plan,
        launcher_cfg=HydraConfig.get().launcher,
        results_dir=cfg.results_dir,
        sweep_dir=Path(cfg.sweep_dir) / plan.name,
        wandb=OmegaConf.to_container(cfg.wandb, resolve=True),  # type: ignore[arg-type]
        max_runs=cfg.max_runs,
    )
    summary = {
        "planned": outcome.planned,
        "already_done": outcome.already_done,
        "launched": outcome.launched,
        **outcome.statuses,
    }
    print(f"sweep '{plan.name}': " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    return summary


main = entry_point("sweep", run)


if __name__ == "__main__":
    main()
