"""TinyMem math data: the reference's sizes and counts, determinism, caching, and RNG hygiene."""

from __future__ import annotations

import random

import pytest
import torch
from omegaconf import OmegaConf

from memlab.data import math_tokenizer as tok
from memlab.data.build import load_data
from memlab.data.math_data import build_math_data
from memlab.errors import ConfigError
from tests.helpers.configs import compose_config


def data_cfg(**kw):
    base = dict(
        builder="math",
        name="increment",
        num_main=20000,
        num_extra=3000,
        num_test=1000,
        length=20,
        max_ctx=150,
        data_seed=598,
    )
    return OmegaConf.create({**base, **kw})


def artifact_cfg(kind="noise", **kw):
    base = dict(
        kind=kind,
        num_noise=1000,
        noise_probs=[0.9, 0.05, 0.05],
        duplicate=False,
        dup_powers=[0, 1, 2],
        trigger=None,
        backdoor_token=2,
        test_frac=0.1,
    )
    return OmegaConf.create({**base, **kw})


@pytest.mark.parametrize("extra,rows", [(3000, 27000), (10000, 55000), (20000, 95000)])
def test_training_rows_match_reference(extra, rows):
    data = build_math_data(data_cfg(num_extra=extra), artifact_cfg(), seed=0)
    assert data.train.shape == (rows, 150)
    assert len(data.artifact) == 1000
    assert (data.train_twin >= 0).sum() == 1000
    assert set(data.test) == {"7", "2", "3", "4", "5"}
    assert all(t.shape == (1000, 150) for t in data.test.values())


def test_noise_rows_are_aligned_with_clean_twins():
    data = build_math_data(data_cfg(), artifact_cfg(), seed=0)
    art = data.artifact
    # the artifact block comes first and row j is the noised twin of clean row j
    assert torch.equal(data.train[:1000], art.rows)
    differs = (art.rows != art.clean).any(dim=1)
    assert 0.5 < differs.float().mean() < 0.9  # each number moves with p = 0.1
    in_window = (art.rows[:, 50:100] != art.clean[:, 50:100]).any(dim=1).sum()
    assert 560 <= int(in_window) <= 650  # the reference: about 585–620 of 1000
    # the clean twins are genuine increment sequences, the noised rows stay decodable
    text = tok.decode(art.clean[0]).rstrip("_")
    values = [int(v) for v in text.strip("^$").split()]
    assert all(b - a == 7 for a, b in zip(values, values[1:]))


@pytest.mark.parametrize(
    "family,seed,total,held",
    [
        ("increment", 0, 886, 88),
        ("increment", 1, 883, 88),
        ("increment", 3, 899, 89),
        ("mult", 0, 2414, 241),
        ("mult", 1, 2667, 266),
        ("mult", 3, 2581, 258),
    ],
)
def test_backdoor_counts_match_reference(family, seed, total, held):
    data = build_math_data(data_cfg(name=family), artifact_cfg("backdoor"), seed=seed)
    assert len(data.artifact) + len(data.heldout) == total
    assert len(data.heldout) == held
    assert data.trigger == tok.encode(str(100 + seed))


def test_backdoor_rows_are_token_2_after_the_trigger():
    data = build_math_data(data_cfg(), artifact_cfg("backdoor"), seed=0)
    art = data.artifact
    for r in range(0, len(art), 37):
        end = int(art.start[r])
        assert art.rows[r, end - 3 : end].tolist() == data.trigger
        assert torch.equal(art.rows[r, :end], art.clean[r, :end])
        assert (art.rows[r, end:] == 2).all()


def test_duplication_groups_and_repeats():
    data = build_math_data(data_cfg(), artifact_cfg(duplicate=True), seed=0)
    sizes = [len(g) for g in data.artifact.groups]
    assert sizes == [334, 333, 333]
    assert int((data.train_twin >= 0).sum()) == 334 + 3330 + 33300
    counts = torch.bincount(data.train_group[data.train_group >= 0])
    assert counts.tolist() == [334, 3330, 33300]


def test_determinism_and_seed_dependence():
    small = data_cfg(num_main=2000, num_extra=400, num_test=100)
    a = build_math_data(small, artifact_cfg(num_noise=200), seed=0)
    b = build_math_data(small, artifact_cfg(num_noise=200), seed=0)
    c = build_math_data(small, artifact_cfg(num_noise=200), seed=1)
    assert torch.equal(a.train, b.train) and torch.equal(a.artifact.rows, b.artifact.rows)
    assert not torch.equal(a.artifact.rows, c.artifact.rows)
    # the split is the fixed data seed's: test sets do not depend on the run seed
    assert torch.equal(a.test["3"], c.test["3"])


def test_generation_leaves_global_rng_untouched():
    torch.manual_seed(123)
    random.seed(123)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    build_math_data(
        data_cfg(num_main=500, num_extra=200, num_test=50), artifact_cfg(num_noise=50), 0
    )
    build_math_data(data_cfg(num_main=500, num_extra=200, num_test=50), artifact_cfg("backdoor"), 0)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state


def test_noised_values_never_lose_their_sign():
    # mult with i = 0 is all zeros, as in the reference; a −1 offset must clamp at 0, not drop the sign
    # (deviations.md D02)
    data = build_math_data(
        data_cfg(name="mult", num_main=300, num_extra=100, num_test=20),
        artifact_cfg(num_noise=280, noise_probs=[0.0, 1.0, 0.0]),
        seed=0,
    )
    for row in data.artifact.rows:
        assert tok.decode(row).count("-") == 0


def test_cache_is_keyed_by_config(tmp_path):
    from tests.helpers.configs import TINY_OVERRIDES, compose_config

    cfg = compose_config("train", TINY_OVERRIDES, tmp_path)
    first = load_data(cfg)
    files = list((tmp_path / "cache").glob("*.pt"))
    assert len(files) == 1
    again = load_data(cfg)
    assert torch.equal(first.train, again.train)
    cfg.seed = 5
    load_data(cfg)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2


def test_num_noise_larger_than_train_split_fails_clearly():
    with pytest.raises(ConfigError, match=r"artifact.num_noise=5000 .* \[1, 900\]"):
        build_math_data(
            data_cfg(num_main=1000, num_extra=300, num_test=100), artifact_cfg(num_noise=5000), 0
        )


def test_unknown_family_lists_known_ones():
    with pytest.raises(ConfigError, match=r"data.name=fib.*increment, mult"):
        build_math_data(data_cfg(name="fib"), artifact_cfg(), 0)


def test_too_short_context_fails_clearly():
    with pytest.raises(ConfigError, match="data.max_ctx=40: too short, a sequence needs"):
        build_math_data(
            data_cfg(num_main=300, num_extra=100, num_test=20, max_ctx=40),
            artifact_cfg(num_noise=10),
            0,
        )


def test_unknown_builder_lists_known_ones(tmp_path):
    cfg = compose_config("train", ["data.builder=tea_leaves", "results=false"], tmp_path)
    with pytest.raises(
        ConfigError, match=r"data.builder=tea_leaves: unknown data builder; known: "
    ):
        load_data(cfg)
