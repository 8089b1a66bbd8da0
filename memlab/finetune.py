"""``python -m memlab.finetune``: fine-tune a trained model on clean data, one of the paper's
mitigations (Sakarvadia et al. 2025).

Examples::

    python -m memlab.finetune finetune=both ckpt=outputs/runs/train/<time>/checkpoints/last.ckpt
    python -m memlab.finetune finetune=clean finetune.inherit_optimizer=false ckpt=...
    python -m memlab.finetune ckpt=latest base.data=mult base.artifact=noise base.seed=0 base.n_layer=4

``ckpt`` is required: a path to a memlab ``last.ckpt``, or ``latest`` to take the checkpoint of the
latest finished training run in the results store that matches ``base.*`` (the one taken is logged).

The run config is the base run's config (data, artifact, seed, model, eval, regularizer, read from
the checkpoint's ``memlab_config``) with this invocation's trainer, loggers, callbacks, paths and
fine-tuning settings on top; ``model=``, ``eval=`` and ``regularizer=`` may be set explicitly (a
model that does not match the checkpoint fails in one line). The data is always the base run's, so
the clean twins are those of the rows the model memorized. The fit, its evaluation every epoch, the
``summary.json`` and the results-store row are those of training (:func:`make_fit`).

Fine-tuning starts through Lightning's own restore (``trainer.fit(ckpt_path=...)``) from the base
checkpoint, adapted: the model, the epoch counter (fine-tuning epochs continue the base run's
numbering, as in the reference), the evaluation history and the regularizer states come back as
saved; the optimizer keeps the base run's AdamW moments by default with this run's
hyper-parameters (e.g. the fine-tuning lr) in its param groups, or starts fresh with
``finetune.inherit_optimizer=false`` (deviations.md D29); only callback states of callbacks this run
has are kept. An interrupted run resumes from its own ``checkpoints/last.ckpt``: given as
``ckpt_path``, or found in the run directory when a sweep re-runs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from memlab.data.build import load_data
from memlab.data.bundle import LMData
from memlab.data.datamodule import LMDataModule
from memlab.errors import ConfigError, lookup
from memlab.models.build import load_trained_model, read_checkpoint
from memlab.regularizers.build import build_regularizers
from memlab.runs import DONE, ResultsStore, entry_point, finish, output_dir
from memlab.training.setup import Fit, make_fit, numbering_of_config

log = logging.getLogger(__name__)
LATEST = "latest"
INVOCATION_KEYS = ("task_name", "paths", "trainer", "logger", "callbacks", "finetune", "results")
OPTIONAL_KEYS = ("model", "eval", "regularizer")  # null = the base run's


# --------------------------------------------------------------------------- the three recipes
def artifact_twins(data: LMData) -> torch.Tensor:
    """The clean versions of the noised / poisoned training rows, without duplicates."""
    if data.artifact is None:
        raise ConfigError("finetune.recipe needs an artifact, but the base run has artifact=none")
    return data.artifact.clean


# The data recipes, named for what they contain (deviations.md D28): clean_artifact
# (finetune=clean) = the artifact rows' clean twins; all_clean (finetune=extra) = every clean
# training row, i.e. the training set without the artifact block (the reference's "extra");
# both (finetune=both) = all clean training rows plus the clean twins.
RECIPES: dict[str, Callable[[LMData], torch.Tensor]] = {
    "clean_artifact": artifact_twins,
    "all_clean": lambda data: data.clean_train(),
    "both": lambda data: torch.cat([data.clean_train(), artifact_twins(data)]),
}


def recipe_rows(name: str, data: LMData) -> torch.Tensor:
    """The fine-tuning rows of recipe ``name``."""
    return lookup(RECIPES, name, kind="fine-tuning recipe", key="finetune.recipe")(data)


class RecipeDataModule(LMDataModule):
    """The run's data module, training on the recipe's rows instead of the full training set."""

    def __init__(self, cfg, data: LMData, rows: torch.Tensor) -> None:
        super().__init__(cfg, data)
        self.rows = rows

    def train_rows(self) -> torch.Tensor:
        return self.rows


# --------------------------------------------------------------------------- the base checkpoint
BASE_COLUMNS = {  # base selector key → results-store column
    "task": "run/task",
    "data": "data.name",
    "artifact": "artifact.kind",
    "seed": "seed",
    "n_layer": "model.n_layer",
    "num_extra": "data.num_extra",
    "regularizer": "regularizer.name",
}


def find_base_checkpoint(results_dir: str | Path, selector: Mapping[str, Any]) -> Path:
    """The ``last.ckpt`` of the latest finished run matching ``selector`` in the results store
    (a finished run's row holds ``paths.output_dir``; its checkpoint is under ``checkpoints/``)."""
    unknown = set(selector) - set(BASE_COLUMNS)
    if unknown:
        raise ConfigError(f"unknown base key(s) {sorted(unknown)}; known: {sorted(BASE_COLUMNS)}")
    want = {BASE_COLUMNS[k]: v for k, v in selector.items() if v is not None}
    found = [
        Path(row["paths.output_dir"]) / "checkpoints" / "last.ckpt"
        for row in ResultsStore(Path(results_dir)).rows()
        if row.get("run/status") == DONE
        and row.get("paths.output_dir")
        and all(row.get(col) == val for col, val in want.items())
    ]
    found = [path for path in found if path.is_file()]
    if not found:
        raise ConfigError(
            f"ckpt=latest: no finished run with a checkpoint matches base={want} in "
            f"{results_dir}; pass ckpt=<path to last.ckpt>"
        )
    return found[-1]


def base_checkpoint_path(cfg: DictConfig) -> Path:
    """``ckpt`` (a path), or with ``ckpt=latest`` the results-store match of ``base``."""
    if not cfg.get("ckpt"):
        raise ConfigError(
            "ckpt is not set: pass ckpt=<path to a memlab last.ckpt>, or ckpt=latest to take the "
            "latest finished training run matching base.*"
        )
    if cfg.ckpt != LATEST:
        return Path(cfg.ckpt)
    path = find_base_checkpoint(cfg.paths.results_dir, OmegaConf.to_container(cfg.base))
    log.info("ckpt=latest: fine-tuning %s (latest finished run matching base)", path)
    return path


def completed_epochs(ckpt: dict) -> int:
    """Training passes done by the run that saved ``ckpt``: the epoch a resumed fit starts at
    (the fit loop's processed epochs; its ``epoch`` field lags by one when saved at an epoch end)."""
    progress = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current")
    if progress:
        return int(max(progress["processed"], progress["completed"]))
    return int(ckpt.get("epoch", 0))


def optimizer_state(base: dict, fit: Fit, *, inherit: bool) -> dict:
    """AdamW state: the base run's moments (``inherit``) or none, with this run's param groups."""
    fresh = fit.module.configure_optimizers().state_dict()
    moments = (
        base["optimizer_states"][0]["state"] if inherit and base.get("optimizer_states") else {}
    )
    return {"state": moments, "param_groups": fresh["param_groups"]}


def save_start_checkpoint(base: dict, fit: Fit, *, inherit_optimizer: bool, path: Path) -> Path:
    """The base checkpoint with this run's optimizer state and only its callbacks' states."""
    ckpt = dict(base)
    ckpt["optimizer_states"] = [optimizer_state(base, fit, inherit=inherit_optimizer)]
    ckpt["lr_schedulers"] = []
    keys = {cb.state_key for cb in fit.trainer.callbacks}
    ckpt["callbacks"] = {k: v for k, v in base.get("callbacks", {}).items() if k in keys}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


# --------------------------------------------------------------------------- the run
def finetune_config(cfg: DictConfig, base_cfg: DictConfig, ckpt: Path, base_passes: int):
    """The base run's config with this invocation's settings on top (see the module docstring)."""
    run_cfg = base_cfg.copy()
    with open_dict(run_cfg):
        for key in (*INVOCATION_KEYS, *OPTIONAL_KEYS):
            if key in INVOCATION_KEYS or cfg.get(key) is not None:
                run_cfg[key] = cfg.get(key)
        run_cfg.ckpt = str(ckpt)
        run_cfg.ckpt_path = cfg.get("ckpt_path")
        run_cfg.base = cfg.get("base")
        run_cfg.data.cache_dir = "${paths.cache_dir}"  # this invocation's cache (same tensors)
        run_cfg.optim.lr = cfg.finetune.lr
        run_cfg.train.eval_every = cfg.finetune.eval_every
        run_cfg.train.batch_size = cfg.finetune.batch_size or run_cfg.train.batch_size
        numbering = numbering_of_config(run_cfg)
        run_cfg.trainer.max_epochs = numbering.last_label(base_passes + cfg.finetune.epochs)
    return run_cfg


def base_metrics(base: dict) -> dict[str, float]:
    """The base run's final metrics (its evaluation history), prefixed ``base/``."""
    history = base.get("callbacks", {}).get("MemorizationEval", {}).get("history", [])
    latest = history[-1] if history else {}
    keys = ("mem/perc", "mem/perc_clean", "util/acc_mean", "util/ppl")
    return {f"base/{k}": float(latest[k]) for k in keys if k in latest}


def resume_path(cfg: DictConfig, out: Path) -> Path | None:
    """``ckpt_path`` (it must exist), else this run directory's own ``checkpoints/last.ckpt``."""
    if cfg.get("ckpt_path"):
        if not Path(cfg.ckpt_path).is_file():
            raise ConfigError(f"ckpt_path={cfg.ckpt_path} does not exist")
        return Path(cfg.ckpt_path)
    own = out / "checkpoints" / "last.ckpt"
    if own.is_file():
        log.info("resuming the interrupted fine-tuning run from %s", own)
        return own
    return None


def run(cfg: DictConfig) -> dict[str, float]:
    """Fine-tune, evaluate every epoch, write ``summary.json`` and a results-store row."""
    ckpt = base_checkpoint_path(cfg)
    base = read_checkpoint(ckpt)  # one-line error for a missing or foreign file
    start_passes = completed_epochs(base)
    run_cfg = finetune_config(cfg, OmegaConf.create(base["memlab_config"]), ckpt, start_passes)
    out = output_dir(run_cfg)
    resume = resume_path(cfg, out)
    data = load_data(run_cfg)
    pl.seed_everything(run_cfg.seed, workers=True, verbose=False)
    model, _ = load_trained_model(ckpt, data, run_cfg.model)  # one-line error on a mismatch
    model.train()  # Lightning keeps each submodule's mode; the loader returns eval mode
    rows = recipe_rows(cfg.finetune.recipe, data)
    fit = make_fit(run_cfg, data, model, build_regularizers(run_cfg.regularizer, run_cfg.seed))
    start = resume or save_start_checkpoint(
        base,
        fit,
        inherit_optimizer=cfg.finetune.inherit_optimizer,
        path=out / "finetune_start.ckpt",
    )
    log.info("fine-tuning %s on %d rows (%s)", ckpt, len(rows), cfg.finetune.recipe)
    t0 = time.perf_counter()
    try:
        datamodule = RecipeDataModule(run_cfg, data, rows)
        fit.trainer.fit(fit.module, datamodule=datamodule, ckpt_path=str(start))
    finally:
        if not resume:
            Path(start).unlink(missing_ok=True)
    metrics = {
        **base_metrics(base),
        **fit.evaluator.latest,
        "train/loss": float(fit.trainer.callback_metrics.get("train/loss", float("nan"))),
        "cost/seconds": time.perf_counter() - t0,
        "epochs": float(fit.trainer.current_epoch),
        "finetune/epochs": float(fit.trainer.current_epoch - start_passes),
        "finetune/rows": float(len(rows)),
    }
    return finish(run_cfg, metrics)


main = entry_point("finetune", run)


if __name__ == "__main__":
    main()
