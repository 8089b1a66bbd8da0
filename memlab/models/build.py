"""Build or load the model a run asks for (``model.name``), from the table ``MODELS``."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from memlab.data.lm_data import LMData
from memlab.errors import ConfigError, lookup
from memlab.models.edit import first_line
from memlab.models.hf import build_pretrained
from memlab.models.tiny_neox import build_tiny_neox
from memlab.models.tinymem import build_tinymem


def _tinymem(model_cfg, data: LMData) -> nn.Module:
    return build_tinymem(
        model_cfg, data.vocab_size, data.max_ctx, data.bos_id, data.eos_id, data.pad_id
    )


# model.name → builder(model_cfg, data); pretrained builders may adopt the model's vocabulary
MODELS: dict[str, Callable[[DictConfig, LMData], nn.Module]] = {
    "tinymem": _tinymem,
    "tiny_neox": build_tiny_neox,
    "hf": build_pretrained,  # any causal LM (hub name or local directory)
    "pythia": build_pretrained,  # GPT-NeoX checkpoints
}


def build_model(model_cfg, data: LMData) -> nn.Module:
    """A fresh model for ``data`` (vocabulary and context come from the data)."""
    return lookup(MODELS, model_cfg.name, kind="model", key="model.name")(model_cfg, data)


def read_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint written by memlab (its ``memlab_config`` holds the run config)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ckpt={path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ConfigError(
            f"ckpt={path}: cannot be read, truncated or not a checkpoint ({first_line(err)})"
        ) from None
    if not isinstance(ckpt, dict) or "memlab_config" not in ckpt:
        raise ConfigError(f"ckpt={path}: not a memlab checkpoint (no memlab_config inside)")
    if "state_dict" not in ckpt:
        raise ConfigError(f"ckpt={path}: holds no model weights (no state_dict inside)")
    return ckpt


def load_trained_model(
    path: str | Path, data: LMData, model_cfg=None
) -> tuple[nn.Module, DictConfig]:
    """The model of a memlab checkpoint and the run config it was trained with.

    ``model_cfg``, when given, must describe the same architecture as the checkpoint; a mismatch
    is reported in one line instead of a wall of state-dict errors.
    """
    ckpt = read_checkpoint(path)
    run_cfg = OmegaConf.create(ckpt["memlab_config"])
    cfg = model_cfg if model_cfg is not None else run_cfg.model
    model = build_model(cfg, data)
    state = {
        k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")
    }
    expected = model.state_dict()
    bad = [k for k, v in state.items() if k not in expected or expected[k].shape != v.shape]
    missing = [k for k in expected if k not in state and not k.endswith("attn.bias")]
    if bad or missing:
        raise ConfigError(
            f"ckpt={path} does not match the model config "
            f"(e.g. {(bad or missing)[0]}); trained with model={dict(run_cfg.model)}"
        )
    model.load_state_dict(state, strict=False)
    return model.eval(), run_cfg
