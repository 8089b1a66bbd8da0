"""The unlearning subject of the production path: a pretrained HF model (``model=pythia_*`` / ``hf``)
and a memorized-sequence file (``data=pythia_memorized``), instead of a memlab checkpoint.

Unlearning spec §10: the forget set is the rows of the file this model (at this revision) still
reproduces (``forget_set=mem``); % memorized is reported over the whole file (§13 item 25); the
retain set is the second part of the perplexity file. The model is loaded once and never copied
(§13 item 24); restoring, if ever needed, re-applies Edits or uses
:class:`memlab.models.mlp_snapshot.MLPSnapshot`.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from memlab.data.build import load_data
from memlab.errors import ConfigError
from memlab.models.build import build_model
from memlab.runs import CONF_DIR
from memlab.unlearn.subject import Subject

PRETRAINED_MODELS = ("hf", "pythia")
DEFAULT_EVAL = CONF_DIR / "eval" / "pythia.yaml"


def is_pretrained_run(cfg: DictConfig) -> bool:
    """No memlab checkpoint, and a pretrained model selected."""
    model = cfg.get("model")
    return not cfg.get("ckpt") and model is not None and model.get("name") in PRETRAINED_MODELS


def load_pretrained_subject(cfg: DictConfig) -> Subject:
    """Model (on the GPU when there is one) + memorized-sequence data + eval settings."""
    if cfg.get("data") is None:
        raise ConfigError(
            "a pretrained model needs data=pythia_memorized data.memorized_file=<[N, 80] file>"
        )
    data = load_data(cfg)
    model = build_model(cfg.model, data)  # takes vocab / EOS / pad from the model's config
    device = cfg.model.get("device") or "auto"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    eval_cfg = cfg.get("eval") if cfg.get("eval") is not None else OmegaConf.load(DEFAULT_EVAL)
    return Subject(model, data, eval_cfg, None, None)
