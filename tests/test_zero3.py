"""ZeRO-3 edit helper, MLP snapshot, and the multi-GPU trainer presets (construction only: Lightning
refuses to run DeepSpeed on CPU)."""

from __future__ import annotations

import socket

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from memlab.models.edit import Edit, MLPSnapshot
from memlab.models.mlp_adapter import MLPAdapter
from tests.helpers.configs import compose_config
from tests.helpers.planted import tiny_neox


def seeded_neox(seed: int = 0) -> GPTNeoXForCausalLM:
    torch.manual_seed(seed)
    return tiny_neox(hidden=32).eval()


def random_edit(model: torch.nn.Module, seed: int = 1) -> Edit:
    """Keep-masks over every MLP tensor dropping ~30 % of the entries, plus one unit ablation."""
    g = torch.Generator().manual_seed(seed)
    adapter = MLPAdapter(model)
    masks = {n: torch.rand(p.shape, generator=g) > 0.3 for n, p in adapter.parameters().items()}
    return Edit("test", masks).merged(Edit("unit", adapter.unit_mask(1, torch.tensor([0, 5]))))


def test_snapshot_restores_only_mlp_weights():
    model = seeded_neox()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    snap = MLPSnapshot(model)
    assert set(snap.weights) == set(MLPAdapter(model).parameters())
    random_edit(model).apply(model)
    assert not all(torch.equal(before[n], p) for n, p in model.state_dict().items())
    snap.restore(model)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # the first run builds DeepSpeed's CPU communication op (~60-100 s)
def test_edit_through_zero3_helper_equals_plain_edit(monkeypatch):
    deepspeed = pytest.importorskip("deepspeed")
    env = dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1")
    for key, value in {**env, "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    plain = seeded_neox()
    edit = random_edit(plain)
    expected = {n: p.detach().clone() for n, p in edit.apply(plain).named_parameters()}

    model = seeded_neox()  # same seed → same initial weights
    config = {
        "train_micro_batch_size_per_gpu": 1,
        "zero_optimization": {"stage": 3},
        "zero_allow_untested_optimizer": True,
    }
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # CPU-capable, untouched by the test
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    try:
        check_zero3_edit(deepspeed, engine.module, edit, expected)
    finally:
        torch.distributed.destroy_process_group()


def check_zero3_edit(deepspeed, module, edit: Edit, expected: dict) -> None:
    """The helper-applied edit on the partitioned ``module`` equals ``expected`` (the plain edit)."""
    partitioned = dict(module.named_parameters())
    name = next(iter(edit.masks))
    assert hasattr(partitioned[name], "ds_id") and partitioned[name].numel() == 0

    edit.apply(module)  # Edit.apply detects ZeRO-3 and gathers through the helper

    got = {}
    for n, p in module.named_parameters():
        with deepspeed.zero.GatheredParameters([p]):
            got[n] = p.detach().clone()
    assert set(got) == set(expected)
    for n in expected:
        assert torch.equal(got[n], expected[n]), n
    assert sum(int((got[n] == 0).sum()) for n in edit.masks) >= edit.n_changed


@pytest.mark.parametrize(
    ("preset", "stage", "offload"),
    [
        ("deepspeed_stage_2", 2, False),
        ("deepspeed_stage_3", 3, False),
        ("deepspeed_stage_3_offload", 3, True),
    ],
)
def test_deepspeed_presets_construct(tmp_path, preset, stage, offload):
    from pytorch_lightning.strategies import DeepSpeedStrategy

    from memlab.runs import deepspeed_config_of, trainer_kwargs

    cfg = compose_config("train", [f"trainer={preset}"], tmp_path)
    kwargs = trainer_kwargs(cfg.trainer)
    strategy = kwargs["strategy"]
    assert isinstance(strategy, DeepSpeedStrategy)
    zero = deepspeed_config_of(strategy)["zero_optimization"]
    assert zero["stage"] == stage
    assert ("offload_optimizer" in zero) == offload and ("offload_param" in zero) == offload
    assert kwargs["accelerator"] == "gpu" and kwargs["precision"] == "bf16-mixed"


def test_ddp_preset_constructs(tmp_path):
    from pytorch_lightning.strategies import DDPStrategy

    from memlab.runs import deepspeed_config_of, trainer_kwargs

    cfg = compose_config("train", ["trainer=ddp"], tmp_path)
    strategy = trainer_kwargs(cfg.trainer)["strategy"]
    assert isinstance(strategy, DDPStrategy) and deepspeed_config_of(strategy) is None
    assert trainer_kwargs(compose_config("train", [], tmp_path).trainer).get("strategy") is None
