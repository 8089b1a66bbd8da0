"""The production path on CPU: HF loading (local directory, revision, dtype), memorized-sequence
data, and every Pythia unlearning method end to end through the runner on a tiny GPT-NeoX that
memorized planted sequences (the stand-in for Pythia + MemPi's files)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from memlab.data.build import load_data
from memlab.errors import ConfigError
from memlab.models.build import build_model
from tests.helpers.configs import compose_config
from tests.helpers.planted import train_planted

PYTHIA_METHODS = [
    "activations",
    "slimming",
    "hard_concrete",
    "greedy",
    "durable",
    "durable_aggregate",
    "subnet",
    "balanced_subnet",
]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return train_planted(tmp_path_factory.mktemp("planted_pythia"))


def pythia_overrides(planted, *extra: str) -> list[str]:
    return [
        "model=hf",
        f"model.path={planted.model_dir}",
        "data=pythia_memorized",
        f"data.memorized_file={planted.memorized_file}",
        f"data.ppl_file={planted.ppl_file}",
        "eval=pythia",
        *extra,
    ]


def test_memorized_file_becomes_the_data_contract(tmp_path, planted):
    cfg = compose_config("train", pythia_overrides(planted, "data.ppl_fraction=0.25"), tmp_path)
    data = load_data(cfg)
    art = data.artifact
    assert art.kind == "natural" and torch.equal(art.rows, planted.planted)
    assert torch.equal(art.clean, art.rows) and art.start.tolist() == [32] * len(planted.planted)
    assert torch.equal(data.test["pile"], planted.unseen[:16])  # 64 rows × 0.25
    assert torch.equal(data.clean_train(), planted.unseen[16:])  # retain = the rest
    assert data.eos_id == 0 and data.pad_id == 0


def test_ppl_file_is_recut_to_the_row_length(tmp_path, planted):
    long_rows = planted.unseen.reshape(-1)[: 40 * 128].reshape(40, 128)  # MemPi-like [M, 128]
    torch.save(long_rows, tmp_path / "ppl128.pt")
    cfg = compose_config(
        "train", pythia_overrides(planted, f"data.ppl_file={tmp_path / 'ppl128.pt'}"), tmp_path
    )
    data = load_data(cfg)
    rows = torch.cat([data.test["pile"], data.train])
    assert rows.shape == (64, 80) and torch.equal(rows.reshape(-1), long_rows.reshape(-1))


def test_local_directory_loads_the_saved_weights_in_the_asked_dtype(tmp_path, planted):
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(planted.model_dir)
    cfg = compose_config("train", pythia_overrides(planted, "model.dtype=bf16"), tmp_path)
    data = load_data(cfg)
    data.vocab_size, data.eos_id = 7, 5  # replaced by the model config's values
    model = build_model(cfg.model, data)
    assert not model.training
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    for (name, p), q in zip(model.named_parameters(), saved.parameters()):
        assert torch.equal(p, q.to(torch.bfloat16)), name
    assert (data.vocab_size, data.eos_id, data.pad_id) == (64, 0, 0)


def test_revision_and_dtype_are_forwarded_to_from_pretrained(monkeypatch, tmp_path, planted):
    import transformers

    from memlab.models.hf import load_hf_causal_lm

    calls = []

    def fake_from_pretrained(source, **kwargs):
        calls.append((source, kwargs))
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    cfg = compose_config("train", ["model=pythia_6.9b", "model.revision=step36000"], tmp_path)
    load_hf_causal_lm(cfg.model)
    source, kwargs = calls[-1]
    assert source == "EleutherAI/pythia-6.9b-deduped"
    assert kwargs["revision"] == "step36000" and kwargs["dtype"] == torch.float16
    # a local directory wins over repo + revision
    cfg.model.path = str(planted.model_dir)
    load_hf_causal_lm(cfg.model)
    assert calls[-1][0] == str(planted.model_dir) and "revision" not in calls[-1][1]


def test_presets_name_the_paper_models(tmp_path):
    expected = {
        "pythia_2.8b": "EleutherAI/pythia-2.8b-deduped",
        "pythia_6.9b": "EleutherAI/pythia-6.9b-deduped",
        "pythia_160m": "EleutherAI/pythia-160m-deduped",
    }
    for preset, repo in expected.items():
        model = compose_config("train", [f"model={preset}"], tmp_path).model
        assert (model.name, model.repo, model.revision, model.dtype) == (
            "pythia",
            repo,
            "step143000",
            "fp16",
        )
    ev = compose_config("train", ["eval=pythia"], tmp_path).eval
    assert (ev.prompt_len, ev.k, ev.suppress_eos) == (32, 40, False)


def test_loader_errors_are_one_line(tmp_path, planted):
    from memlab.models.hf import load_hf_causal_lm

    bad = OmegaConf.create({"path": str(tmp_path / "missing"), "dtype": "fp16"})
    with pytest.raises(ConfigError, match="model.path=.*not a directory"):
        load_hf_causal_lm(bad)
    with pytest.raises(ConfigError, match="model.dtype='fp8'"):
        load_hf_causal_lm(OmegaConf.create({"path": str(planted.model_dir), "dtype": "fp8"}))
    offline = OmegaConf.create({"repo": "EleutherAI/no-such-model", "revision": "step1"})
    with pytest.raises(ConfigError, match="cannot load model EleutherAI/no-such-model@step1"):
        load_hf_causal_lm(offline)
    big = tmp_path / "big.pt"
    torch.save(torch.full((2, 80), 100), big)  # token ids beyond the tiny vocabulary
    cfg = compose_config("train", pythia_overrides(planted, f"data.memorized_file={big}"), tmp_path)
    with pytest.raises(ConfigError, match="token id 100"):
        build_model(cfg.model, load_data(cfg))


def test_lm_module_builds_a_pretrained_model_in_configure_model(tmp_path, planted):
    import pytorch_lightning as pl

    from memlab.data.datamodule import batch_loader
    from memlab.models.hf import pretrained_factory
    from memlab.training.lm_module import LMModule

    cfg = compose_config("train", pythia_overrides(planted, "trainer.max_epochs=1"), tmp_path)
    module = LMModule(pretrained_factory(cfg.model), cfg.optim, pad_id=0)
    assert module.model is None  # nothing is loaded before the strategy is set up
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=batch_loader(planted.unseen[:8], 8, seed=0))
    assert type(module.model).__name__ == "GPTNeoXForCausalLM"
    assert trainer.global_step == 1


# ratios at which each method removes the planted memorization of the tiny model (CPU-sized runs)
METHOD_OVERRIDES = {
    "activations": ["unlearn.ratio=0.1"],
    "slimming": ["unlearn.ratio=0.1"],
    "hard_concrete": ["unlearn.ratio=0.1"],
    "greedy": ["unlearn.ratio=1e-3", "unlearn.count=mlp"],
    "durable": ["unlearn.ratio=0.05"],
    "durable_aggregate": ["unlearn.ratio=0.05"],
    "subnet": ["unlearn.ratio=0.1", "unlearn.epochs=2"],
    "balanced_subnet": ["unlearn.ratio=0.1", "unlearn.epochs=5"],
}
assert set(METHOD_OVERRIDES) == set(PYTHIA_METHODS)


@pytest.fixture
def one_thread():
    """Tiny matrices: one thread is much faster than two on a shared, loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def unlearn_cfg(tmp_path, planted, *extra: str):
    return compose_config("unlearn", pythia_overrides(planted, "results=false", *extra), tmp_path)


@pytest.mark.parametrize("method", PYTHIA_METHODS)
def test_pythia_method_runs_through_the_runner(tmp_path, planted, method, one_thread):
    from transformers import AutoModelForCausalLM

    from memlab.metrics.memorization import greedy_match
    from memlab.models.edit import Edit
    from memlab.unlearn.runner import run

    saved = AutoModelForCausalLM.from_pretrained(planted.model_dir)
    memorized = greedy_match(saved, planted.planted, 32, 40)
    row = run(unlearn_cfg(tmp_path, planted, f"unlearn={method}", *METHOD_OVERRIDES[method]))
    # % memorized over the whole file; forget set = the memorized rows; retain = 2nd half of ppl file
    assert row["before/mem/perc"] == pytest.approx(100.0 * memorized.float().mean().item())
    assert row["forget/n"] == memorized.sum().item() and row["retain/n"] == 32
    assert row["after/mem/perc"] < row["before/mem/perc"]
    assert torch.isfinite(torch.tensor(row["after/util/ppl"]))
    edit = Edit.load(tmp_path / "run" / "edit.safetensors")
    assert edit.method == method and edit.n_changed == row["edit/n_changed"] > 0
    assert not (
        tmp_path / "run" / "edited_model"
    ).exists()  # full models only on request (deviations.md D55)


def test_saved_pythia_edit_reapplies_to_the_same_metrics(tmp_path, planted, one_thread):
    from memlab.unlearn.runner import run

    first = run(unlearn_cfg(tmp_path / "a", planted, "unlearn=durable", "unlearn.ratio=0.05"))
    edit_file = tmp_path / "a" / "run" / "edit.safetensors"
    again = run(unlearn_cfg(tmp_path / "b", planted, f"apply_edit={edit_file}", "save_model=true"))
    for key in ("after/mem/perc", "after/util/ppl", "after/util/ppl_ref", "edit/n_changed"):
        assert again[key] == first[key], key
    assert (tmp_path / "b" / "run" / "edited_model" / "config.json").is_file()
