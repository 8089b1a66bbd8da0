"""Non-member artifact rows (``LMData.nonmembers``) for membership audits: built like the artifact
from rows never trained on, without changing one bit of the training data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from memlab.data.build import load_data
from memlab.data.lm_data import LMData, cache_path
from tests.helpers.configs import compose_config
from tests.test_text_data import SMALL

MATH = [
    "data.num_main=2000",
    "data.num_extra=200",
    "data.num_test=100",
    "data.length=6",
    "data.max_ctx=40",
    "results=false",
]
TEXT = SMALL  # the small offline corpus of the language-data tests
CASES = {
    "math_noise": [*MATH, "artifact.num_noise=60"],
    "math_noise_dup": [
        *MATH,
        "artifact.num_noise=60",
        "artifact.duplicate=true",
        "artifact.dup_powers=[0,1]",
    ],
    "math_backdoor": [*MATH, "artifact=backdoor", "seed=1"],
    "mult_noise": [*MATH, "artifact.num_noise=60", "data.name=mult"],
    "text_noise": [
        *TEXT,
        "artifact.num_noise=40",
        "artifact.duplicate=true",
        "artifact.dup_powers=[0,1]",
    ],
    "text_backdoor": [*TEXT, "artifact=backdoor"],
    "text_backdoor_trainpool": [*TEXT, "artifact=backdoor", "data.backdoor_pool=train"],
}
# Digests of the training data (train + metadata, test sets, artifact, held-out rows, trigger) as
# built before non-members existed: adding them must not change one bit.
BEFORE_NONMEMBERS = {
    "math_noise": "079db646d064ec99",
    "math_noise_dup": "31ee28cd6a2ee6b2",
    "math_backdoor": "6759a882fb924607",
    "mult_noise": "42b833ce1b9da1e9",
    "text_noise": "1fe1bac7dbe3d549",
    "text_backdoor": "fb0a422e94302f64",
    "text_backdoor_trainpool": "cbf63b69af59b0a7",
}


def training_digest(data: LMData) -> str:
    digest = hashlib.sha256()

    def add(t: torch.Tensor) -> None:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.contiguous().numpy().tobytes())

    for t in (data.train, data.train_dist, data.train_twin, data.train_group):
        add(t)
    for name in sorted(data.test):
        digest.update(name.encode())
        add(data.test[name])
    for part in (data.artifact, data.heldout):
        if part is None:
            digest.update(b"none")
            continue
        for t in (part.rows, part.clean, *part.groups):
            add(t)
        if part.start is not None:
            add(part.start)
        digest.update(repr(part.powers).encode())
    digest.update(repr((data.trigger, data.dist_names)).encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, LMData]:
    tmp = tmp_path_factory.mktemp("nonmembers")
    out = {}
    for name, overrides in CASES.items():
        cfg = compose_config("train", overrides, tmp)
        cfg.data.cache_dir = str(tmp / "cache")
        out[name] = load_data(cfg)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_training_data_is_unchanged_bit_for_bit(built, name):
    assert training_digest(built[name]) == BEFORE_NONMEMBERS[name]


@pytest.mark.parametrize("name", list(CASES))
def test_nonmembers_are_never_trained_on(built, name):
    data = built[name]
    nonmembers = data.nonmembers
    assert nonmembers is not None and nonmembers.kind == data.artifact.kind
    trained = {tuple(row) for row in data.train.tolist()}
    assert not trained & {tuple(row) for row in nonmembers.rows.tolist()}
    assert nonmembers.groups[0].tolist() == list(range(len(nonmembers)))


@pytest.mark.parametrize(
    "name", ["math_noise", "math_noise_dup", "mult_noise", "math_backdoor", "text_noise"]
)
def test_nonmembers_match_the_artifact_in_number(built, name):
    assert len(built[name].nonmembers) == len(built[name].artifact)


@pytest.mark.parametrize("name", ["math_noise", "mult_noise", "text_noise"])
def test_noise_nonmembers_are_noised_clean_unseen_rows(built, name):
    data = built[name]
    nonmembers = data.nonmembers
    changed = (nonmembers.rows != nonmembers.clean).float().mean()
    artifact_changed = (data.artifact.rows != data.artifact.clean).float().mean()
    assert 0 < changed < 0.5 and 0 < artifact_changed < 0.5
    assert nonmembers.start is None
    trained = {tuple(row) for row in data.train.tolist()}
    assert not trained & {tuple(row) for row in nonmembers.clean.tolist()}


@pytest.mark.parametrize("name", ["math_backdoor", "text_backdoor", "text_backdoor_trainpool"])
def test_backdoor_nonmembers_are_poisoned_after_the_trigger(built, name):
    data = built[name]
    nonmembers = data.nonmembers
    token = 2
    positions = torch.arange(nonmembers.rows.shape[1]).unsqueeze(0)
    after = positions >= nonmembers.start.unsqueeze(1)
    assert (nonmembers.rows[after] == token).all()
    assert torch.equal(nonmembers.rows[~after], nonmembers.clean[~after])
    trained = {tuple(row) for row in data.train.tolist()}
    unseen_held = [row for row in data.heldout.rows.tolist() if tuple(row) not in trained]
    first = nonmembers.rows[: len(unseen_held)].tolist()
    assert first == unseen_held[: len(nonmembers)]  # the held-out triggered rows come first


def unseen_heldout(data: LMData) -> int:
    trained = {tuple(row) for row in data.train.tolist()}
    return sum(tuple(row) not in trained for row in data.heldout.rows.tolist())


def test_text_backdoor_nonmembers_are_every_unseen_triggered_row(built):
    """The reference pool holds every triggered block, so only the held-out ones that equal no
    training row are unseen; with the train pool the test split's triggered blocks join them."""
    reference, train_pool = built["text_backdoor"], built["text_backdoor_trainpool"]
    assert 0 < len(reference.nonmembers) == unseen_heldout(reference) < len(reference.artifact)
    assert unseen_heldout(train_pool) < len(train_pool.nonmembers) < len(train_pool.artifact)


def test_math_noise_nonmembers_top_up_with_fresh_rows(tmp_path):
    cfg = compose_config("train", [*MATH, "artifact.num_noise=150"], tmp_path)
    data = load_data(cfg)
    assert len(data.nonmembers) == 150  # 100 test rows + 50 fresh rows (x0 >= num_main)
    test_rows = {tuple(row) for row in data.test["7"].tolist()}
    clean = [tuple(row) for row in data.nonmembers.clean.tolist()]
    assert sum(row in test_rows for row in clean) == 100


def test_nonmembers_survive_the_cache_and_old_files_still_load(built, tmp_path):
    data = built["math_backdoor"]
    data.save(tmp_path / "data.pt")
    loaded = LMData.load(tmp_path / "data.pt")
    assert torch.equal(loaded.nonmembers.rows, data.nonmembers.rows)
    assert torch.equal(loaded.nonmembers.start, data.nonmembers.start)
    state = torch.load(tmp_path / "data.pt", weights_only=True)
    del state["nonmembers"]  # a file written before non-members existed
    torch.save(state, tmp_path / "old.pt")
    assert LMData.load(tmp_path / "old.pt").nonmembers is None


def test_a_data_cache_from_before_nonmembers_is_not_reused(tmp_path):
    """Caches written before non-members existed sit under the old key: they are rebuilt."""
    cfg = compose_config("train", CASES["math_noise"], tmp_path)
    cfg.data.cache_dir = str(tmp_path / "cache")
    key = {
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "artifact": OmegaConf.to_container(cfg.artifact, resolve=True),
        "seed": cfg.seed,
    }
    key["data"].pop("cache_dir")
    old = load_data(cfg)
    old.nonmembers = None
    old.save(cache_path(cfg.data.cache_dir, cfg.data.name, key))  # the path before the bump
    for path in Path(cfg.data.cache_dir).glob("*.pt"):
        if path != cache_path(cfg.data.cache_dir, cfg.data.name, key):
            path.unlink()
    assert load_data(cfg).nonmembers is not None
