"""What an unlearning run edits: the model, the data it was trained on, the metric settings.

:func:`load_subject` is the one place where the runner gets its model and data, so other sources
(HF/Pythia checkpoints with ``data=pythia_memorized``) plug in here without touching the runner.
A memlab checkpoint carries its run config (``memlab_config``): the data is rebuilt from it
through :func:`~memlab.data.build.load_data`, so unlearning sees exactly the training data, and
the memorization windows are the ones the model was evaluated with during training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from memlab.data.build import load_data
from memlab.data.bundle import LMData
from memlab.errors import ConfigError
from memlab.models.build import load_trained_model, read_checkpoint


@dataclass
class Subject:
    model: nn.Module
    data: LMData
    eval_cfg: DictConfig
    run_cfg: DictConfig | None  # the training run's config (memlab checkpoints)
    ckpt: Path | None = None

    def save_model(self, out: Path) -> Path:
        """The edited model: a memlab checkpoint (``load_trained_model`` reads it) or an HF folder."""
        if self.run_cfg is not None:
            path = out / "edited.ckpt"
            state = {f"model.{k}": v.cpu() for k, v in self.model.state_dict().items()}
            config = OmegaConf.to_container(self.run_cfg, resolve=True)
            torch.save({"state_dict": state, "memlab_config": config}, path)
            return path
        path = out / "edited_model"
        self.model.save_pretrained(path)
        return path


def eval_settings(run_cfg: DictConfig | None, override: DictConfig | None) -> DictConfig:
    """The checkpoint's eval settings with the run's ``eval`` group (when selected) on top."""
    parts = [c for c in (run_cfg.get("eval") if run_cfg else None, override) if c is not None]
    if not parts:
        raise ConfigError("no eval settings: select an eval group, e.g. eval=tinymem")
    return OmegaConf.merge(*parts)


def load_memlab_checkpoint(cfg: DictConfig) -> Subject:
    """A TinyMem (or tiny GPT-NeoX) model trained by ``memlab.train`` and its training data."""
    ckpt = Path(cfg.ckpt)
    run_cfg = OmegaConf.create(read_checkpoint(ckpt)["memlab_config"])
    data = load_data(run_cfg)
    model, run_cfg = load_trained_model(ckpt, data, cfg.get("model"))
    return Subject(model, data, eval_settings(run_cfg, cfg.get("eval")), run_cfg, ckpt)


def load_subject(cfg: DictConfig) -> Subject:
    """Model + data + metric settings for an unlearning run (``ckpt=<path>``)."""
    from memlab.unlearn.pretrained_subject import is_pretrained_run, load_pretrained_subject

    if is_pretrained_run(cfg):  # production path: model=pythia_*|hf + data=pythia_memorized
        return load_pretrained_subject(cfg)
    if not cfg.get("ckpt"):
        raise ConfigError("ckpt=<path> is required: the memlab checkpoint (last.ckpt) to unlearn")
    return load_memlab_checkpoint(cfg)


def describe(subject: Subject) -> dict[str, Any]:
    """Facts about the subject for the results row."""
    return {"subject/arch": type(subject.model).__name__, "subject/ckpt": str(subject.ckpt)}
