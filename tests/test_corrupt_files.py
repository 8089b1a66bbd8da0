"""Corrupted or mismatched checkpoint and edit files fail in one line that names the file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from memlab.data.build import load_data
from memlab.data.lm_data import LMData
from memlab.data.pythia_data import read_tokens
from memlab.errors import ConfigError
from memlab.models.build import read_checkpoint
from memlab.models.edit import Edit
from tests.helpers.configs import TINY_OVERRIDES, compose_config


def truncated(path, fraction: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_a_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"memlab_config": {}, "state_dict": {"w": torch.zeros(1000)}}, path)
    truncated(path)
    with pytest.raises(ConfigError) as err:
        read_checkpoint(path)
    assert one_line(err).startswith(f"ckpt={path}: cannot be read")


def test_checkpoints_without_config_or_weights_are_refused(tmp_path):
    foreign, weightless = tmp_path / "foreign.ckpt", tmp_path / "weightless.ckpt"
    torch.save({"state_dict": {}}, foreign)
    torch.save({"memlab_config": {}}, weightless)
    with pytest.raises(ConfigError, match=f"ckpt={foreign}: not a memlab checkpoint"):
        read_checkpoint(foreign)
    with pytest.raises(ConfigError, match=f"ckpt={weightless}: holds no model weights"):
        read_checkpoint(weightless)


def small_edit(tmp_path, name: str = "0.weight", shape=(3, 2)):
    keep = torch.ones(shape, dtype=torch.bool)
    keep[0, 0] = False
    return Edit("demo", {name: keep}).save(tmp_path / "edit.safetensors")


def test_a_truncated_edit_names_the_file(tmp_path):
    path = truncated(small_edit(tmp_path), 0.6)
    with pytest.raises(ConfigError) as err:
        Edit.load(path)
    assert one_line(err).startswith(f"edit file {path}: cannot be read")
    with pytest.raises(ConfigError, match=f"edit file {tmp_path / 'nope'}: cannot be read"):
        Edit.load(tmp_path / "nope")


def test_a_safetensors_file_that_is_no_edit_is_refused(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ConfigError, match=f"edit file {path}: not a memlab edit"):
        Edit.load(path)


def test_an_edit_of_another_model_names_file_and_parameter(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3))
    foreign = Edit.load(small_edit(tmp_path, name="h.0.mlp.c_fc.weight"))
    with pytest.raises(ConfigError) as err:
        foreign.apply(model)
    assert one_line(err).startswith(
        f"edit file {tmp_path / 'edit.safetensors'}: masks parameter h.0.mlp.c_fc.weight"
    )
    reshaped = Edit.load(small_edit(tmp_path, shape=(2, 3)))
    with pytest.raises(ConfigError, match=r"the mask of 0.weight has shape \(2, 3\)"):
        reshaped.apply(model)
    fitting = Edit.load(small_edit(tmp_path))
    fitting.apply(model)
    assert model[0].weight[0, 0] == 0


def test_a_truncated_token_file_names_the_file(tmp_path):
    path = tmp_path / "memorized.pt"
    torch.save(torch.zeros(50, 80, dtype=torch.long), path)
    truncated(path)
    with pytest.raises(ConfigError) as err:
        read_tokens(path)
    assert one_line(err).startswith(f"token file {path}: cannot be read")


def test_a_truncated_data_cache_is_rebuilt(tmp_path, caplog):
    cfg = compose_config("train", [*TINY_OVERRIDES], tmp_path)
    built = load_data(cfg)
    (cache,) = Path(cfg.data.cache_dir).glob("*.pt")
    truncated(cache)
    with caplog.at_level(logging.WARNING):
        rebuilt = load_data(cfg)
    assert "cannot be read" in caplog.text and str(cache) in caplog.text
    assert torch.equal(rebuilt.train, built.train)
    assert torch.equal(LMData.load(cache).train, built.train)  # the cache file is whole again
