"""One entry point from configs to data: ``load_data(cfg)`` dispatches on ``data.family``."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from memlab.data.bundle import TinyMemData
from memlab.data.cache import cached_data
from memlab.registry import Registry

BUILDERS = Registry("data builder", key="data.builder")


@BUILDERS.register("math")
def _math(data_cfg, artifact_cfg, seed: int) -> TinyMemData:
    from memlab.data.math_data import build_math_data

    return build_math_data(data_cfg, artifact_cfg, seed)


def load_data(cfg: DictConfig) -> TinyMemData:
    """Build (or load from cache) the data described by ``cfg.data``, ``cfg.artifact``, ``cfg.seed``."""
    builder = BUILDERS.get(cfg.data.builder)
    key = {
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "artifact": OmegaConf.to_container(cfg.artifact, resolve=True),
        "seed": cfg.seed,
    }
    key["data"].pop("cache_dir", None)
    return cached_data(
        cfg.data.get("cache_dir"),
        f"{cfg.data.name}",
        key,
        lambda: builder(cfg.data, cfg.artifact, cfg.seed),
    )
