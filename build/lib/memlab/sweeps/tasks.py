"""Task registry: task name → (primary Hydra config, ``"module:function"`` entry point).

The sweep launches runs of tasks written elsewhere (``memlab.train``, ``memlab.unlearn``,
``memlab.finetune``), each exposing ``run(cfg) -> dict`` of flat metrics. The entry point is resolved
lazily from its import string, so a sweep plan can be built (and dry-run) before those modules exist,
and joblib/submitit workers pickle only the task's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memlab.errors import ConfigError, lookup


@dataclass(frozen=True)
class TaskSpec:
    """Where a task's config and code live."""

    config_name: str  # primary config in conf/ (e.g. "unlearn" for conf/unlearn.yaml)
    target: str  # "package.module:function" returning a flat metrics dict

    def resolve(self) -> Callable[[Any], dict[str, Any]]:
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            raise ConfigError(f"task entry point {self.target} cannot be imported: {err}") from err
        if not hasattr(module, attr):
            raise ConfigError(f"task entry point {self.target}: module has no '{attr}'")
        return getattr(module, attr)


# task name -> where its primary config and its run(cfg) live (plain references, imported on use)
TASKS: dict[str, TaskSpec] = {
    "train": TaskSpec("train", "memlab.train:run"),
    "unlearn": TaskSpec("unlearn", "memlab.unlearn.runner:run"),
    "finetune": TaskSpec("finetune", "memlab.finetune:run"),
    "toy": TaskSpec("toy", "tests.helpers.toy_task:run"),
}


def get_task(name: str) -> TaskSpec:
    """The spec of a known task; an unknown name fails with the list of known ones."""
    return lookup(TASKS, name, kind="task", key="sweep.task")
