"""One entry point from configs to data: ``load_data(cfg)`` dispatches on ``data.builder`` and
caches the result under a hash of the data configuration."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from memlab.data.lm_data import LM_DATA_VERSION, LMData, cache_path, read_cache
from memlab.data.math_data import build_math_data
from memlab.data.pythia_data import build_pythia_data
from memlab.data.text_data import build_text_data
from memlab.data.text_sources import fingerprint
from memlab.errors import lookup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Builder:
    """``build(data_cfg, artifact_cfg, seed)``; ``inputs(data_cfg)`` fingerprints local input
    files, which join the cache key (edited files rebuild)."""

    build: Callable[[Any, Any, int], LMData]
    inputs: Callable[[Any], list] | None = None


BUILDERS: dict[str, Builder] = {
    "math": Builder(build_math_data),
    "text": Builder(build_text_data, inputs=lambda data_cfg: fingerprint(data_cfg.corpus)),
    "pythia_memorized": Builder(build_pythia_data),
}


def load_data(cfg: DictConfig) -> LMData:
    """Build (or load from cache) the data described by ``cfg.data``, ``cfg.artifact``, ``cfg.seed``."""
    builder = lookup(BUILDERS, cfg.data.builder, kind="data builder", key="data.builder")
    key = {
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "artifact": OmegaConf.to_container(cfg.artifact, resolve=True)
        if cfg.get("artifact") is not None
        else None,  # files of naturally memorized sequences carry no planted artifact
        "seed": cfg.seed,
    }
    key["data"].pop("cache_dir", None)
    if builder.inputs is not None:
        key["inputs"] = builder.inputs(cfg.data)
    return cached_data(
        cfg.data.get("cache_dir"),
        cfg.data.name,
        key=key,
        build=lambda: builder.build(cfg.data, cfg.get("artifact"), cfg.seed),
    )


def cached_data(
    cache_dir: str | Path | None, prefix: str, *, key: Any, build: Callable[[], LMData]
) -> LMData:
    """Load the data for ``key`` from the cache, or build and save it (also in place of a cache
    file that cannot be read: the cache is derived data)."""
    if cache_dir is None:
        return build()
    path = cache_path(cache_dir, prefix, {"lm_data": LM_DATA_VERSION, "key": key})
    data = read_cache(path, LMData.load)
    if data is not None:
        return data
    data = build()
    data.save(path)
    log.info("data cached at %s", path)
    return data
