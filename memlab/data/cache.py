"""Tensor caches keyed by a hash of the data configuration (never pickled loaders, Q17)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memlab.data.bundle import LMData
from memlab.runs import config_hash

log = logging.getLogger(__name__)
CACHE_VERSION = 1  # bump when generation changes, so stale caches are not reused
# bump when LMData gains a field, so older data caches are rebuilt (token and BPE caches are kept);
# 2: LMData.nonmembers
LM_DATA_VERSION = 2


def cache_path(cache_dir: str | Path, prefix: str, key: Any) -> Path:
    return Path(cache_dir) / f"{prefix}-{config_hash({'v': CACHE_VERSION, 'key': key})}.pt"


def cached_data(
    cache_dir: str | Path | None, prefix: str, key: Any, build: Callable[[], LMData]
) -> LMData:
    """Load the data for ``key`` from the cache, or build and save it."""
    if cache_dir is None:
        return build()
    path = cache_path(cache_dir, prefix, {"lm_data": LM_DATA_VERSION, "key": key})
    if path.exists():
        log.info("data cache hit: %s", path)
        return LMData.load(path)
    data = build()
    data.save(path)
    log.info("data cached at %s", path)
    return data
