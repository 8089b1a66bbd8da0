"""Stable hashes of configurations: data caches and the results store key on them."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _plain(obj: Any) -> Any:
    """Turn OmegaConf containers (and tuples) into plain JSON-able Python objects."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, DictConfig | ListConfig):
            return OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def config_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of a config, independent of key order."""
    text = json.dumps(_plain(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
