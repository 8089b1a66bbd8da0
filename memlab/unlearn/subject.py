"""What an unlearning run edits: the model, the data it was trained on, the metric settings.

:func:`load_subject` is the one place where the runner gets its model and data:

- a memlab checkpoint (``ckpt=<path>``) carries its run config (``memlab_config``): the data is
  rebuilt from it through :func:`~memlab.data.build.load_data`, so unlearning sees exactly the
  training data, and the memorization windows are the ones the model was evaluated with;
- the production path: a pretrained HF model (``model=pythia_*`` / ``hf``) and a memorized-sequence
  file (``data=pythia_memorized``). The forget set is the rows of the file this model (at this
  revision) still reproduces (``forget_set=mem``); % memorized is reported over the whole file
  (deviations.md D53); the retain set is the second part of the perplexity file. The model is
  loaded once and never copied (deviations.md D52).

:func:`describe` gives the results row what the subject was made from (data, artifact, model,
eval settings), so unlearning rows match the training runs they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from memlab.data.build import load_data
from memlab.data.lm_data import LMData
from memlab.errors import ConfigError
from memlab.models.build import build_model, load_trained_model, read_checkpoint
from memlab.regularizers.build import attach_test_time
from memlab.runs import CONF_DIR, config_columns, flatten, plain

PRETRAINED_MODELS = ("hf", "pythia")
DEFAULT_EVAL = CONF_DIR / "eval" / "pythia.yaml"
DESCRIBED = ("data", "artifact", "model")  # nodes of the subject's config recorded in the row


@dataclass
class Subject:
    model: nn.Module
    data: LMData
    eval_cfg: DictConfig
    origin: DictConfig  # the config the model and data came from (a checkpoint's run config)
    ckpt: Path | None = None  # the memlab checkpoint, None for a pretrained model

    @property
    def is_text(self) -> bool:
        """Text data (wikitext): its default retain set is the first 100,000 clean rows."""
        data_cfg = self.origin.get("data")
        return data_cfg is not None and data_cfg.get("builder") == "text"

    def save_model(self, out: Path) -> Path:
        """The edited model: a memlab checkpoint (``load_trained_model`` reads it) or an HF folder."""
        if self.ckpt is not None:
            path = out / "edited.ckpt"
            state = {f"model.{k}": v.cpu() for k, v in self.model.state_dict().items()}
            config = OmegaConf.to_container(self.origin, resolve=True)
            torch.save({"state_dict": state, "memlab_config": config}, path)
            return path
        path = out / "edited_model"
        self.model.save_pretrained(path)
        return path


def eval_settings(run_cfg: DictConfig | None, override: DictConfig | None) -> DictConfig:
    """The checkpoint's eval settings with the run's ``eval`` group (when selected) on top."""
    parts = [c for c in (run_cfg.get("eval") if run_cfg else None, override) if c is not None]
    if not parts:
        raise ConfigError("eval=null: no eval settings; allowed: an eval group, e.g. eval=tinymem")
    return OmegaConf.merge(*parts)


def check_same_data(cfg: DictConfig, run_cfg: DictConfig) -> None:
    """``data=<x>`` given with ``ckpt=`` must describe the checkpoint's own data."""
    mine, theirs = cfg.get("data"), run_cfg.get("data")
    if mine is None or theirs is None:
        return
    ours = flatten(plain(mine, resolve=False))
    trained = flatten(plain(theirs, resolve=False))
    differ = [
        k
        for k in ours
        if k in trained
        and ours[k] != trained[k]
        and "${" not in f"{ours[k]}{trained[k]}"  # paths and other interpolations may differ
    ]
    if differ:
        key = "name" if "name" in differ else differ[0]
        also = "" if key == "name" else f", data.{key}={trained.get(key)}"
        raise ConfigError(
            f"data.{key}={ours.get(key)}: disagrees with the checkpoint's data "
            f"(data.name={trained.get('name')}{also}) in ckpt={cfg.ckpt}; allowed: leave data "
            "unset to use the checkpoint's data"
        )


def load_memlab_checkpoint(cfg: DictConfig) -> Subject:
    """A TinyMem (or tiny GPT-NeoX) model trained by ``memlab.train`` and its training data."""
    ckpt = Path(cfg.ckpt)
    run_cfg = OmegaConf.create(read_checkpoint(ckpt)["memlab_config"])
    check_same_data(cfg, run_cfg)
    data = load_data(run_cfg)
    model, run_cfg = load_trained_model(ckpt, data, cfg.get("model"))
    attach_test_time(model, run_cfg)  # example-tied dropout's test-time mask
    return Subject(model, data, eval_settings(run_cfg, cfg.get("eval")), run_cfg, ckpt)


def is_pretrained_run(cfg: DictConfig) -> bool:
    """No memlab checkpoint, and a pretrained model selected."""
    model = cfg.get("model")
    return not cfg.get("ckpt") and model is not None and model.get("name") in PRETRAINED_MODELS


def load_pretrained_subject(cfg: DictConfig) -> Subject:
    """Model (on the GPU when there is one) + memorized-sequence data + eval settings."""
    if cfg.get("data") is None:
        raise ConfigError(
            "data=null: a pretrained model needs memorized sequences; allowed: "
            "data=pythia_memorized data.memorized_file=<[N, 80] file>"
        )
    data = load_data(cfg)
    model = build_model(cfg.model, data)  # takes vocab / EOS / pad from the model's config
    device = cfg.model.get("device") or "auto"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    eval_cfg = cfg.get("eval") if cfg.get("eval") is not None else OmegaConf.load(DEFAULT_EVAL)
    origin = OmegaConf.create({k: cfg.get(k) for k in DESCRIBED})
    return Subject(model, data, eval_cfg, origin, None)


def load_subject(cfg: DictConfig) -> Subject:
    """Model + data + metric settings for an unlearning run (``ckpt=<path>``)."""
    if is_pretrained_run(cfg):  # production path: model=pythia_*|hf + data=pythia_memorized
        return load_pretrained_subject(cfg)
    if not cfg.get("ckpt"):
        raise ConfigError("ckpt=null: a model to unlearn is required; allowed: ckpt=<last.ckpt>")
    return load_memlab_checkpoint(cfg)


def describe(subject: Subject) -> dict[str, Any]:
    """Facts about the subject for the results row: its architecture and checkpoint, and the data,
    artifact, model and eval settings it was made with (``train.seed``: the training run's seed)."""
    nodes = {k: subject.origin[k] for k in DESCRIBED if subject.origin.get(k) is not None}
    columns = config_columns(OmegaConf.create({**nodes, "eval": subject.eval_cfg}))
    if subject.ckpt is not None:
        columns["train.seed"] = subject.origin.get("seed")
    return {
        "subject/arch": type(subject.model).__name__,
        "subject/ckpt": str(subject.ckpt),
        **columns,
    }
