"""Run a sweep plan through a Hydra launcher: one Hydra job = one run.

Hydra's own multirun expands comma lists into a cartesian product, which cannot express the paper's
filtered grids (the reference's ``localize_hp_sweep.py``). So the plan is expanded in Python
(:mod:`memlab.sweeps.plan`) and handed to the launcher the way Hydra's basic sweeper does it:
compose the task's primary config as the master config, instantiate the launcher chosen on the
command line (``hydra/launcher=local|joblib|slurm``), and call ``launch`` with one override list per run.
Each job recomposes its own config from those overrides (on the worker, for submitit), so every run
is an ordinary Hydra job of the task with its own output directory ``<sweep dir>/<run hash>``.

Every run is composed here first (its hash decides whether it is done). A run whose overrides do not
compose fails alone: it becomes a ``failed`` row whose ``run/error`` is the composition error's one
line, no job and no folder are made for it, and the other runs are launched.

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
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from memlab.errors import ConfigError
from memlab.runs import (
    CONF_DIR,
    FAILED,
    ResultsStore,
    config_hash,
    hydra_error_line,
    run_hash,
)
from memlab.sweeps.execute import SKIPPED, execute_run
from memlab.sweeps.plan import PlannedRun, SweepPlan

log = logging.getLogger(__name__)


_BOOKKEEPING = ("paths.results_dir=", "hydra.sweep.subdir=")  # overrides the sweep adds to a run


@dataclass(frozen=True)
class FailedRun:
    """A run that failed in this invocation: what to look at."""

    hash: str
    overrides: tuple[str, ...]
    error: str
    log: str | None  # the run's log file (None when it failed before a job started)


@dataclass
class SweepOutcome:
    """What a sweep invocation did (counts by row status, and the runs that failed)."""

    planned: int
    already_done: int
    launched: int
    statuses: dict[str, int] = field(default_factory=dict)
    failed: list[FailedRun] = field(default_factory=list)


def make_loader(search_path: Sequence[str] = ()) -> ConfigLoaderImpl:
    """Hydra's config loader over memlab's conf/ plus extra config directories (``hydra.searchpath``
    entries such as ``file:///abs/dir``) where a task outside memlab keeps its YAML; pickled with
    the launcher, so its jobs search the same directories."""
    path = create_config_search_path(str(CONF_DIR))
    for entry in reversed(search_path):  # after conf/, in the order given
        path.append(provider="memlab.sweep", path=entry, anchor=SearchPathQuery(provider="main"))
    return ConfigLoaderImpl(config_search_path=path)


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
    """One run's config, exactly as its job will see it; a composition error is one line."""
    try:
        return loader.load_sweep_config(master, list(overrides))
    except Exception as err:
        raise ConfigError(hydra_error_line(err)) from err


def _failed_row(plan: SweepPlan, run: PlannedRun, error: str) -> dict[str, Any]:
    """The row of a run that does not compose: its overrides, a hash of them, the error."""
    hash_ = config_hash({"task": plan.task.name, "overrides": run.override_strings()})
    return {**run.as_dict(), "run/hash": hash_, "run/task": plan.task.name,
            "run/status": FAILED, "run/error": error}  # fmt: skip


@dataclass
class Pending:
    """The runs of a plan still to launch, how many are done, and those that do not compose."""

    jobs: list[list[str]] = field(default_factory=list)
    already_done: int = 0
    not_composed: list[dict[str, Any]] = field(default_factory=list)


def pending_jobs(
    plan: SweepPlan, loader: ConfigLoaderImpl, master: DictConfig, results_dir: str
) -> Pending:
    """Override lists of runs not done yet (each writes its row to ``results_dir`` and its files to
    ``hydra.sweep.subdir=<hash>``), the number of runs already done, and the failed rows of runs
    whose overrides do not compose."""
    done = ResultsStore(results_dir).done_hashes()
    pending = Pending()
    for run in plan.runs:
        overrides = [*run.override_strings(), f"paths.results_dir={results_dir}"]
        try:
            hash_ = run_hash(compose_run(loader, master, overrides))
        except ConfigError as err:
            pending.not_composed.append(_failed_row(plan, run, str(err)))
            continue
        if hash_ in done:
            pending.already_done += 1
            continue
        pending.jobs.append([*overrides, f"hydra.sweep.subdir={hash_}"])
    return pending


def check_plan(plan: SweepPlan, *, search_path: Sequence[str] = ()) -> None:
    """Compose every run of the plan; the first one that does not compose ends with one line."""
    loader = make_loader(search_path)
    master = compose_master(loader, plan.task.config_name, _hydra_overrides(plan))
    for i, run in enumerate(plan.runs):
        try:
            compose_run(loader, master, run.override_strings())
        except ConfigError as err:
            raise ConfigError(f"run [{i}] ({' '.join(run.override_strings())}): {err}") from err


def run_dirs(
    plan: SweepPlan, *, sweep_dir: str | Path, search_path: Sequence[str] = ()
) -> list[tuple[str, dict[str, Any]]]:
    """``(<sweep_dir>/<run hash>, overrides and facts)`` of every run that composes: where a later
    stage of a multi-stage sweep finds the run's checkpoints."""
    loader = make_loader(search_path)
    master = compose_master(loader, plan.task.config_name, _hydra_overrides(plan))
    out = []
    for run in plan.runs:
        try:
            hash_ = run_hash(compose_run(loader, master, run.override_strings()))
        except ConfigError:  # recorded as failed when its own stage is launched
            continue
        out.append((str(Path(sweep_dir).resolve() / hash_), run.as_dict()))
    return out


def _hydra_overrides(plan: SweepPlan, sweep_dir: str | Path | None = None) -> list[str]:
    out = [f"hydra.job.name={plan.task.name}", "hydra.job.chdir=false"]
    if sweep_dir is not None:
        out.append(f"hydra.sweep.dir={Path(sweep_dir).resolve()}")
    return out


def _run_log(ret: Any) -> str | None:
    """The job's log file, when it exists."""
    try:
        path = Path(ret.hydra_cfg.hydra.runtime.output_dir) / "run.log"
    except Exception:  # no Hydra config came back (a crashed worker)
        return None
    return str(path) if path.exists() else None


def _outcome_of(returns: Sequence[Any], outcome: SweepOutcome) -> None:
    """Count the jobs' row statuses and list the failed runs (with their log files)."""
    for ret in returns:
        try:
            row = ret.return_value or {}
        except Exception as err:  # a job that crashed outside execute_run
            row = {"run/status": "crashed", "run/error": " ".join(str(err).split())}
        status = row.get("run/status", "unknown")
        outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
        if status in (FAILED, "crashed"):
            overrides = tuple(o for o in ret.overrides or () if not o.startswith(_BOOKKEEPING))
            outcome.failed.append(FailedRun(
                str(row.get("run/hash")), overrides, str(row.get("run/error")), _run_log(ret)
            ))  # fmt: skip


def launch_plan(
    plan: SweepPlan,
    *,
    launcher_cfg: DictConfig,
    results_dir: str | Path,
    sweep_dir: str | Path,
    wandb: Mapping[str, Any] | None = None,
    max_runs: int | None = None,
    search_path: Sequence[str] = (),
) -> SweepOutcome:
    """Launch the plan's unfinished runs with the given ``hydra.launcher`` config.

    ``search_path``: extra config directories (Hydra ``hydra.searchpath`` entries) for a task whose
    YAML lives outside memlab; the jobs inherit them."""
    loader = make_loader(search_path)
    results_dir = str(Path(results_dir).resolve())
    hydra_overrides = _hydra_overrides(plan, sweep_dir)
    master = compose_master(loader, plan.task.config_name, hydra_overrides)
    pending = pending_jobs(plan, loader, master, results_dir)
    store = ResultsStore(results_dir)
    outcome = SweepOutcome(planned=len(plan), already_done=pending.already_done, launched=0)
    for row in pending.not_composed:
        store.append(row)
        overrides = tuple(f"{k}={v}" for k, v in row.items() if "/" not in k)
        outcome.failed.append(FailedRun(row["run/hash"], overrides, row["run/error"], None))
    if pending.not_composed:
        outcome.statuses[FAILED] = len(pending.not_composed)
    jobs = pending.jobs[:max_runs] if max_runs is not None else pending.jobs
    outcome.launched = len(jobs)
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
    _outcome_of(launcher.launch(jobs, initial_job_idx=0), outcome)
    outcome.statuses.pop(SKIPPED, None)
    return outcome
