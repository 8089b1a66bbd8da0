"""Trainer keyword arguments from a ``trainer`` config whose ``strategy`` may be an object config.

The multi-GPU presets (``conf/trainer/deepspeed_stage_*.yaml``, ``ddp.yaml``) describe Lightning's
``DeepSpeedStrategy`` / ``DDPStrategy`` with a ``_target_`` so every knob (offload, bucket sizes,
activation checkpointing, a passthrough DeepSpeed ``config``) is a config key (anchors §3.1, §6).
A plain string (``strategy: auto``) passes through unchanged.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def trainer_kwargs(trainer_cfg: DictConfig | dict) -> dict[str, Any]:
    """``pl.Trainer(**trainer_kwargs(cfg.trainer))``: the strategy instantiated when configured
    (``trainer_cfg`` may be a config node or the plain dict of one)."""
    kwargs = OmegaConf.to_container(OmegaConf.create(trainer_cfg), resolve=True)
    strategy = kwargs.get("strategy")
    if isinstance(strategy, dict) and "_target_" in strategy:
        kwargs["strategy"] = instantiate(strategy)
    return kwargs


def deepspeed_config_of(strategy: Any) -> dict | None:
    """The DeepSpeed config dict a constructed strategy will use (None for other strategies) —
    what :func:`memlab.models.hf.load_hf_causal_lm` needs inside ``configure_model`` at stage 3."""
    return (
        getattr(strategy, "config", None)
        if type(strategy).__name__ == "DeepSpeedStrategy"
        else None
    )
