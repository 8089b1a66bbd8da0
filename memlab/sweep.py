"""``python -m memlab.sweep experiment=<grid>``: run one of the paper's grids (or any grid preset).

Examples::

    python -m memlab.sweep experiment=paper/unlearn_tinymem dry_run=true
    python -m memlab.sweep experiment=paper/unlearn_tinymem sweep.context.ckpt_dir=<training run dir>
    python -m memlab.sweep experiment=paper/train_tinymem hydra/launcher=joblib hydra.launcher.n_jobs=2
    python -m memlab.sweep experiment=paper/unlearn_pythia hydra/launcher=slurm

``dry_run=true`` composes every run (exit status 2 naming the first run that does not compose) and
prints the plan. Re-running the same command resumes the sweep: runs whose config hash is done in
the results store are skipped (see docs/analysis.md). The exit status is 1 when any run failed; the
failed runs are listed with their hash, overrides and log file. SIGTERM stops the driver like
Ctrl-C, and with it the launcher's worker processes. A sweep with ``stages`` (e.g. experiment=paper/mini)
runs them in order; a stage with ``each`` addresses the run directories of an earlier stage.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from memlab.runs import entry_point
from memlab.sweeps.launch import SweepOutcome, check_plan, launch_plan, run_dirs
from memlab.sweeps.plan import SweepPlan, build_plan, describe, expand_each, stage_specs

log = logging.getLogger(__name__)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM as Ctrl-C: the launcher's abort path terminates its workers (no orphans)."""
    raise KeyboardInterrupt(f"signal {signum}")


def failure_report(outcome: SweepOutcome) -> str:
    """The failed runs of this invocation: hash, overrides, error, and where the log is."""
    lines = [f"{len(outcome.failed)} run(s) failed:"]
    for run in outcome.failed:
        where = run.log or "no log (the run did not start)"
        lines.append(f"  {run.hash} {' '.join(run.overrides)}\n    {run.error}\n    log: {where}")
    return "\n".join(lines)


def _stage_plan(
    stage: dict[str, Any], done: dict[str, SweepPlan], cfg: DictConfig, search_path: list[str]
) -> SweepPlan:
    """A stage's plan; a stage with ``each`` is expanded over the runs of its earlier stage."""
    if not stage.get("each"):
        return build_plan(stage)
    parent = done[stage["each"]["stage"]]
    sweep_dir = Path(cfg.sweep_dir) / parent.name
    return expand_each(stage, run_dirs(parent, sweep_dir=sweep_dir, search_path=search_path))


def _launch(plan: SweepPlan, cfg: DictConfig, search_path: list[str]) -> dict[str, int]:
    """Launch one plan's unfinished runs, print its summary line; exit 1 when any run failed."""
    outcome = launch_plan(
        plan,
        launcher_cfg=HydraConfig.get().launcher,
        results_dir=cfg.results_dir,
        sweep_dir=Path(cfg.sweep_dir) / plan.name,
        wandb=OmegaConf.to_container(cfg.wandb, resolve=True),  # type: ignore[arg-type]
        max_runs=cfg.max_runs,
        search_path=search_path,
    )
    summary = {
        "planned": outcome.planned,
        "already_done": outcome.already_done,
        "launched": outcome.launched,
        **outcome.statuses,
    }
    print(f"sweep '{plan.name}': " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    if outcome.failed:
        print(failure_report(outcome), file=sys.stderr)
        sys.exit(1)
    return summary


def run(cfg: DictConfig) -> dict[str, int]:
    """Expand ``cfg.sweep`` (stage by stage) and check + print it (``dry_run``) or launch its
    unfinished runs; a stage starts when every run of the one before it is done."""
    search_path = list(HydraConfig.get().searchpath or [])
    if not cfg.dry_run:
        signal.signal(signal.SIGTERM, _interrupt)
    plans: dict[str, SweepPlan] = {}
    summary: dict[str, int] = {}
    stages = stage_specs(OmegaConf.to_container(cfg.sweep, resolve=True))  # type: ignore[arg-type]
    for i, stage in enumerate(stages):
        plan = _stage_plan(stage, plans, cfg, search_path)
        plans[plan.name] = plan
        if cfg.dry_run:
            check_plan(plan, search_path=search_path)
            print(describe(plan, show=int(cfg.show), by=cfg.get("count_by")))
            summary[f"{plan.name}/planned"] = len(plan)
            continue
        stage_summary = _launch(plan, cfg, search_path)
        summary.update({f"{plan.name}/{k}": v for k, v in stage_summary.items()})
        finished = stage_summary["already_done"] + stage_summary.get("done", 0)
        if finished < len(plan) and i + 1 < len(stages):  # later stages need all of this one
            print(f"sweep '{plan.name}': {len(plan) - finished} runs left; later stages wait")
            break
    return summary


main = entry_point("sweep", run)


if __name__ == "__main__":
    main()
