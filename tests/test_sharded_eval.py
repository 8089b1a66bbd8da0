"""Evaluation sharded across 2 CPU processes (gloo) returns, on every rank, exactly the verdicts
and metrics of one process — also when the rows do not divide evenly and when a rank gets none."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from memlab.data.lm_data import ArtifactSet, LMData
from memlab.metrics.evaluate import evaluate_model
from memlab.metrics.shards import Shards, shards_for

VOCAB, CTX, PROMPT, K = 14, 12, 4, 4
# (rows, batch size): 7 rows in batches of 2 → 4 batches, 2 per rank (rows 0–3 | 4–6);
# 7 rows in one batch → rank 1 empty; 1 row → rank 1 empty
CASES = [(7, 2), (7, 512), (1, 2)]


class PrefixMeanLM(torch.nn.Module):
    """A tiny causal LM in plain torch (the spawned ranks skip importing transformers): the logits
    at t read the mean embedding of tokens 0…t."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 16)
        self.head = torch.nn.Linear(16, VOCAB)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(input_ids).cumsum(dim=1)
        h = h / torch.arange(1, input_ids.shape[1] + 1).unsqueeze(1)
        return self.head(torch.relu(h))


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return PrefixMeanLM().eval()


def greedy_rows(model: torch.nn.Module, prompts: torch.Tensor) -> torch.Tensor:
    """Rows the model itself continues greedily (so their verdicts are True)."""
    rows = prompts.clone()
    with torch.no_grad():
        for p in range(PROMPT, CTX):
            rows[:, p] = model(input_ids=rows[:, :p])[:, -1].argmax(-1)
    return rows


def case_data(n: int) -> LMData:
    g = torch.Generator().manual_seed(n)
    clean = torch.randint(0, 10, (n, CTX), generator=g)
    rows = clean.clone()
    rows[:, PROMPT:] = (clean[:, PROMPT:] + 1) % 10  # every row evaluable
    rows[: (n + 1) // 2] = greedy_rows(tiny_model(), rows[: (n + 1) // 2])
    artifact = ArtifactSet("noise", rows, clean, [torch.arange(n)], [0])
    empty = torch.zeros(0, dtype=torch.long)
    test = {"7": torch.randint(0, 10, (n, CTX), generator=g)}
    return LMData(rows, empty, empty, empty, ["7"], test, artifact)


def eval_cfg(batch_size: int):
    return OmegaConf.create(
        {"prompt_len": PROMPT, "k": K, "suppress_eos": True, "batch_size": batch_size}
    )


def evaluate_cases(model) -> list:
    out = []
    for n, batch_size in CASES:
        metrics, result = evaluate_model(model, case_data(n), eval_cfg(batch_size))
        out.append((metrics, result.memorized, result.clean_correct))
    return out


def _rank(rank: int, world: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    try:
        model = tiny_model()
        shard = list(shards_for(model, 7, 2).rows)
        torch.save((shard, evaluate_cases(model)), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shards_are_contiguous_whole_batches_covering_every_row():
    for n, batch_size, world in [(7, 2, 2), (7, 512, 2), (1, 2, 2), (10, 3, 3), (0, 4, 2)]:
        shards = [Shards(n, batch_size, r, world) for r in range(world)]
        rows = [list(s.rows) for s in shards]
        assert sum(rows, []) == list(range(n))
        assert all(s.rows.start % batch_size == 0 for s in shards if len(s.rows))
    assert [list(Shards(7, 2, r, 2).rows) for r in range(2)] == [[0, 1, 2, 3], [4, 5, 6]]
    assert list(Shards(1, 2, 1, 2).rows) == []


def test_two_ranks_agree_with_one_process(tmp_path):
    single = evaluate_cases(tiny_model())
    memorized = single[0][1]
    assert 0 < int(memorized.sum()) < len(memorized)  # the verdicts are not all alike
    mp.spawn(_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank, rows in enumerate([[0, 1, 2, 3], [4, 5, 6]]):
        shard, sharded = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert shard == rows  # each rank scored only its shard
        for (metrics, mem, clean), (want_metrics, want_mem, want_clean) in zip(
            sharded, single, strict=True
        ):
            assert metrics == want_metrics
            assert torch.equal(mem, want_mem) and torch.equal(clean, want_clean)
