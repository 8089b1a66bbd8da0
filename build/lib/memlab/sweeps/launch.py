"""Run a sweep plan through a Hydra launcher: one Hydra job = one run.

Hydra's own multirun expands comma lists into a cartesian product, which cannot express the paper's
filtered grids (unlearning-methods.md §8). So the plan is expanded in Python
(:mod:`memlab.sweeps.plan`) and handed to the launcher the way Hydra's basic sweeper does it:
compose the task's primary config as the master config, instantiate the launcher chosen on the
command line (``hydra/launcher=local|joblib|slurm``), and call ``launch`` with one override list per run.
Each job recomposes its own config from those overrides (on the worker, for submitit), so every run
is an ordinary Hydra job of the task with its own output directory ``<sweep dir>/<run hash>``.

This uses Hydra 1.3 internals (``ConfigLoaderImpl``, ``Plugins.instantiate_launcher``), kept in this
one module.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra._internal.callbacks import Callbacks
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from memlab.errors import ConfigError
from memlab.runs import CONF_DIR, ResultsStore, run_hash
from memlab.sweeps.execute import SKIPPED, execute_run
from memlab.sweeps.plan import SweepPlan
from memlab.sweeps.tasks import get_task

log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    """What a sweep invocation did (counts by row status)."""

    planned: int
    already_done: int
    launched: int
    statuses: dict[str, int] = field(default_factory=dict)


def make_loader(conf_dir: Path = CONF_DIR) -> ConfigLoaderImpl:
    return ConfigLoaderImpl(config_search_path=create_config_search_path(str(conf_dir)))


def compose_master(
    loader: ConfigLoaderImpl, config_name: str, hydra_overrides: Sequence[str]
) -> DictConfig:
    """The task's primary config with the sweep's Hydra overrides (what every job starts from)."""
    try:
        return loader.load_configuration(
            config_name=config_name, overrides=list(hydra_overrides), run_mode=RunMode.MULTIRUN
        )
    except Exception as err:
        raise ConfigError(f"cannot compose task config '{config_name}': {err}") from err


def compose_run(
    loader: ConfigLoaderImpl, master: DictConfig, overrides: Sequence[str]
) -> DictConfig:
    """One run's config, exactly as its job will see it."""
    try:
        return loader.load_sweep_config(master, list(overrides))
    except Exception as err:
        raise ConfigError(f"bad overrides {' '.join(overrides)}: {err}") from err


def pending_jobs(
    plan: SweepPlan, loader: ConfigLoaderImpl, master: DictConfig, results_dir: str
) -> tuple[list[list[str]], int]:
    """Override lists of runs not done yet (each writes its row to ``results_dir`` and its files to
    ``hydra.sweep.subdir=<hash>``), and the number of runs already done."""
    done = ResultsStore(results_dir).done_hashes()
    jobs, n_done = [], 0
    for run in plan.runs:
        overrides = [*run.override_strings(), f"paths.results_dir={results_dir}"]
        hash_ = run_hash(compose_run(loader, master, overrides))
        if hash_ in done:
            n_done += 1
            continue
        jobs.append([*overrides, f"hydra.sweep.subdir={hash_}"])
    return jobs, n_done


def _status_counts(returns: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ret in returns:
        try:
            status = (ret.return_value or {}).get("run/status", "unknown")
        except Exception:  # a job that crashed outside execute_run (e.g. bad config on a worker)
            status = "crashed"
        counts[status] = counts.get(status, 0) + 1
    return counts


def launch_plan(
    plan: SweepPlan,
    *,
    launcher_cfg: DictConfig,
    results_dir: str | Path,
    sweep_dir: str | Path,
    wandb: Mapping[str, Any] | None = None,
    max_runs: int | None = None,
    loader: ConfigLoaderImpl | None = None,
) -> SweepOutcome:
    """Launch the plan's unfinished runs with the given ``hydra.launcher`` config."""
    loader = loader or make_loader()
    results_dir = str(Path(results_dir).resolve())
    hydra_overrides = [
        f"hydra.sweep.dir={Path(sweep_dir).resolve()}",
        f"hydra.job.name={plan.task}",
        "hydra.job.chdir=false",
    ]
    master = compose_master(loader, get_task(plan.task).config_name, hydra_overrides)
    jobs, n_done = pending_jobs(plan, loader, master, results_dir)
    jobs = jobs[:max_runs] if max_runs is not None else jobs
    outcome = SweepOutcome(planned=len(plan), already_done=n_done, launched=len(jobs))
    if not jobs:
        return outcome
    with read_write(master), open_dict(master):
        master.hydra.launcher = OmegaConf.create(
            OmegaConf.to_container(launcher_cfg, resolve=False)
        )
    task_fn: Callable[[DictConfig], Any] = functools.partial(
        execute_run,
        task=plan.task,
        results_dir=results_dir,
        group=plan.name,
        wandb=dict(wandb or {}),
    )
    launcher = Plugins.instance().instantiate_launcher(
        hydra_context=HydraContext(config_loader=loader, callbacks=Callbacks(master)),
        task_function=task_fn,
        config=master,
    )
    outcome.statuses = _status_counts(launcher.launch(jobs, initial_job_idx=0))
    outcome.statuses.pop(SKIPPED, None)
    return outcome
