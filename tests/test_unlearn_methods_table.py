"""The method table: the paper's eleven, the families and the reference names derive from it, and
a twelfth method needs only its file, its YAML and one table line (docs/adding-a-method.md)."""

from __future__ import annotations

import shutil

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from memlab.data.build import load_data
from memlab.errors import ConfigError
from memlab.models.build import load_trained_model
from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.methods import (
    ELEVEN,
    METHODS,
    NEURON_METHODS,
    REFERENCE_NAMES,
    WEIGHT_METHODS,
    Method,
    method_named,
)
from memlab.unlearn.runner import run
from tests.helpers import toy_unlearn_method as toy
from tests.helpers.configs import CONF_DIR


def test_the_eleven_families_and_reference_names_come_from_the_table():
    assert len(ELEVEN) == 11 and list(METHODS) == ELEVEN
    assert NEURON_METHODS + WEIGHT_METHODS == ELEVEN and len(NEURON_METHODS) == 5
    assert sorted(REFERENCE_NAMES) == sorted(
        ["zero", "act", "slim", "hc", "ig", "greedy", "durable", "durable_agg", "obs", "random",
         "random_greedy"]
    )  # fmt: skip
    assert all(METHODS[name].reference == ref for ref, name in REFERENCE_NAMES.items())
    with pytest.raises(ConfigError, match="unlearn.name=forget_it: unknown unlearning method"):
        method_named("forget_it")


def test_a_twelfth_method_takes_a_file_a_yaml_and_one_table_line(tiny_run, tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "unlearn" / "random_units.yaml").write_text(toy.YAML)  # 2. the YAML
    monkeypatch.setitem(METHODS, "random_units", Method(toy.random_units, "neuron"))  # 3. the line
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose(
            "unlearn",
            overrides=[f"ckpt={tiny_run.ckpt}", "unlearn=random_units", "unlearn.ratio=0.05"],
        )
    with open_dict(cfg):
        cfg.paths.root_dir = str(tmp_path)
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.cache_dir = str(tmp_path / "cache")
        cfg.paths.results_dir = str(tmp_path / "results")

    row = run(cfg)
    assert row["unlearn.method"] == "random_units" and row["forget/n"] > 0
    edit = Edit.load(tmp_path / "run" / "edit.safetensors")
    model, _ = load_trained_model(tiny_run.ckpt, load_data(tiny_run.cfg))
    adapter = MLPAdapter(model)
    hidden = adapter.blocks[0].fc_in.weight.shape[0]
    assert edit.method == "random_units"
    assert edit.n_changed == row["edit/n_changed"] == adapter.n_layer * 25 * (hidden + 1)
    assert "random_units" not in ELEVEN  # not one of the paper's methods (no reference name)
