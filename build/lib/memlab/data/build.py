"""One entry point from configs to data: ``load_data(cfg)`` dispatches on ``data.family``."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from memlab.data.bundle import LMData
from memlab.data.cache import cached_data
from memlab.errors import Registry

BUILDERS = Registry("data builder", key="data.builder")


@BUILDERS.register("math")
def _math(data_cfg, artifact_cfg, seed: int) -> LMData:
    from memlab.data.math_data import build_math_data

    return build_math_data(data_cfg, artifact_cfg, seed)


@BUILDERS.register("text")
def _text(data_cfg, artifact_cfg, seed: int) -> LMData:
    from memlab.data.text_data import build_text_data

    return build_text_data(data_cfg, artifact_cfg, seed)


def _text_inputs(data_cfg) -> list:
    from memlab.data.text_sources import fingerprint

    return fingerprint(data_cfg.corpus)


_text.inputs_fingerprint = _text_inputs  # local files are part of the cache key (edits rebuild)


def load_data(cfg: DictConfig) -> LMData:
    """Build (or load from cache) the data described by ``cfg.data``, ``cfg.artifact``, ``cfg.seed``."""
    builder = BUILDERS.get(cfg.data.builder)
    key = {
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "artifact": OmegaConf.to_container(cfg.artifact, resolve=True)
        if cfg.get("artifact") is not None
        else None,  # files of naturally memorized sequences carry no planted artifact
        "seed": cfg.seed,
    }
    key["data"].pop("cache_dir", None)
    inputs = getattr(builder, "inputs_fingerprint", None)
    if inputs is not None:
        key["inputs"] = inputs(cfg.data)
    return cached_data(
        cfg.data.get("cache_dir"),
        f"{cfg.data.name}",
        key,
        lambda: builder(cfg.data, cfg.get("artifact"), cfg.seed),
    )


@BUILDERS.register("pythia_memorized")
def _pythia_memorized(data_cfg, artifact_cfg, seed: int) -> LMData:
    from memlab.data.pythia_data import build_pythia_data

    return build_pythia_data(data_cfg, artifact_cfg, seed)
