"""The three fine-tuning data recipes (spec §12 item 1), named for what they contain (Q20).

- ``clean_artifact`` (``finetune=clean``): only the clean twins of the artifact rows (the clean
  versions of the noised / poisoned training sequences), without duplicates.
- ``all_clean`` (``finetune=extra``): every clean training row, i.e. the training set without the
  artifact block. The reference called this "extra" although it is not only the extra
  distributions.
- ``both`` (``finetune=both``): all clean training rows plus the clean artifact twins.
"""

from __future__ import annotations

import torch

from memlab.data.bundle import LMData
from memlab.data.datamodule import LMDataModule
from memlab.errors import ConfigError, Registry

RECIPES = Registry("fine-tuning recipe", key="finetune.recipe")


def _artifact_twins(data: LMData) -> torch.Tensor:
    if data.artifact is None:
        raise ConfigError("finetune.recipe needs an artifact, but the base run has artifact=none")
    return data.artifact.clean


@RECIPES.register("clean_artifact")
def clean_artifact(data: LMData) -> torch.Tensor:
    return _artifact_twins(data)


@RECIPES.register("all_clean")
def all_clean(data: LMData) -> torch.Tensor:
    return data.clean_train()


@RECIPES.register("both")
def both(data: LMData) -> torch.Tensor:
    return torch.cat([data.clean_train(), _artifact_twins(data)])


def recipe_rows(name: str, data: LMData) -> torch.Tensor:
    """The fine-tuning rows of recipe ``name``."""
    return RECIPES.get(name)(data)


class RecipeDataModule(LMDataModule):
    """The run's data module, training on the recipe's rows instead of the full training set."""

    def __init__(self, cfg, data: LMData, rows: torch.Tensor) -> None:
        super().__init__(cfg, data)
        self.rows = rows

    def train_rows(self) -> torch.Tensor:
        return self.rows
