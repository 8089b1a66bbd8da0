"""Build or load the model a run asks for (``model.name``), found through a registry."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from memlab.data.bundle import LMData
from memlab.errors import ConfigError, Registry

MODELS = Registry("model", key="model.name")


@MODELS.register("tinymem")
def _tinymem(model_cfg, data: LMData) -> nn.Module:
    from memlab.models.tinymem import build_tinymem

    return build_tinymem(
        model_cfg, data.vocab_size, data.max_ctx, data.bos_id, data.eos_id, data.pad_id
    )


@MODELS.register("tiny_neox")
def _tiny_neox(model_cfg, data: LMData) -> nn.Module:
    from memlab.models.tiny_neox import build_tiny_neox

    return build_tiny_neox(model_cfg, data)


def build_model(model_cfg, data: LMData) -> nn.Module:
    """A fresh model for ``data`` (vocabulary and context come from the data)."""
    import memlab.models.hf  # noqa: F401  (registers the pretrained builders hf / pythia)

    return MODELS.get(model_cfg.name)(model_cfg, data)


def read_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint written by memlab (its ``memlab_config`` holds the run config)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ckpt={path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if "memlab_config" not in ckpt:
        raise ConfigError(f"ckpt={path} is not a memlab checkpoint (no memlab_config inside)")
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
