"""``python -m memlab.mine``: planted sequences are mined back exactly (k-extractable definition),
resumably, from a token file or an HF dataset."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from memlab.data.pythia_data import read_tokens
from memlab.metrics.memorization import greedy_match_generate
from memlab.mine import mine_extractable, run
from tests.helpers.configs import compose_config
from tests.helpers.planted import train_planted

PROMPT, K = 32, 40


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return train_planted(tmp_path_factory.mktemp("planted_mine"))


@pytest.fixture(scope="module")
def mixed(planted):
    """Planted and unseen rows interleaved in one candidate set (source row i → which)."""
    rows = torch.cat([planted.planted, planted.unseen])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    return rows[order], order < len(planted.planted)


@pytest.fixture(scope="module")
def model(planted):
    return AutoModelForCausalLM.from_pretrained(planted.model_dir).eval()


@pytest.fixture(scope="module")
def truth(model, mixed):
    """Exact-match verdicts by real greedy generation (the definition)."""
    rows, _ = mixed
    return greedy_match_generate(model, rows, PROMPT, K, False, pad_id=0, eos_id=0)


def mine_cfg(tmp_path, planted, tokens_file, extra=()):
    return compose_config(
        "mine",
        [
            "model=hf",
            f"model.path={planted.model_dir}",
            f"source.tokens={tokens_file}",
            f"out={tmp_path / 'mined.pt'}",
            "batch_size=16",
            "progress=false",
            "device=cpu",
            *extra,
        ],
        tmp_path,
    )


def test_mining_finds_exactly_the_reproduced_planted_rows(tmp_path, planted, mixed, truth):
    rows, is_planted = mixed
    assert truth.sum() >= 10, "the tiny model should have memorized most planted rows"
    assert not (truth & ~is_planted).any(), "an unseen random row cannot be reproduced"
    torch.save(rows, tmp_path / "candidates.pt")
    metrics = run(mine_cfg(tmp_path, planted, tmp_path / "candidates.pt"))

    mined = read_tokens(tmp_path / "mined.pt")
    meta = json.loads((tmp_path / "mined.json").read_text())
    assert meta["indices"] == truth.nonzero().squeeze(1).tolist()
    assert torch.equal(mined, rows[truth])
    assert metrics["mine/n_found"] == truth.sum().item()
    assert metrics["mine/n_scanned"] == len(rows)
    assert not (tmp_path / "mined.pt.partial.pt").exists()


def test_mining_resumes_from_partial_results(tmp_path, model, mixed, truth):
    rows, _ = mixed
    partial = tmp_path / "out.partial.pt"
    first_half = rows[:40]
    # an interrupted run: the first 40 rows done, the partial file written every batch
    mine_extractable(
        model,
        first_half,
        prompt_len=PROMPT,
        k=K,
        batch_size=8,
        partial=partial,
        fingerprint="run-a",
        save_every=1,
        progress=False,
    )
    state = torch.load(partial, weights_only=True)
    assert state["next"] == 32  # saved after every batch except the last one (then the run ends)
    # the resumed run skips the rows already done and reports their finds
    found = mine_extractable(
        model,
        rows,
        prompt_len=PROMPT,
        k=K,
        batch_size=8,
        partial=partial,
        fingerprint="run-a",
        progress=False,
    )
    assert found.tolist() == truth.nonzero().squeeze(1).tolist()
    # a partial file of another run is ignored
    fresh = mine_extractable(
        model,
        rows[:8],
        prompt_len=PROMPT,
        k=K,
        batch_size=8,
        partial=partial,
        fingerprint="run-b",
        progress=False,
    )
    assert fresh.tolist() == truth[:8].nonzero().squeeze(1).tolist()


def test_mining_reads_an_hf_dataset_and_checks_lengths(tmp_path, planted, mixed, truth):
    import datasets

    rows, _ = mixed
    long_rows = torch.cat([rows, rows[:, :8]], dim=1)  # longer rows are cut to seq_len
    ds = datasets.Dataset.from_dict({"input_ids": long_rows.tolist() + [[1, 2, 3]]})
    ds.save_to_disk(str(tmp_path / "ds"))
    cfg = mine_cfg(tmp_path, planted, "null", [f"source.dataset={tmp_path / 'ds'}"])
    run(cfg)
    assert torch.equal(read_tokens(tmp_path / "mined.pt"), rows[truth])

    from memlab.errors import ConfigError

    with pytest.raises(ConfigError, match="seq_len"):
        run(mine_cfg(tmp_path, planted, tmp_path / "x.pt", ["eval.k=60"]))
