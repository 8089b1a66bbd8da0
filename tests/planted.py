"""A tiny random GPT-NeoX that memorized planted sequences — the CPU stand-in for Pythia + MemPi
files (tests of the production path: loading, mining, unlearning through the runner)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

VOCAB, SEQ_LEN = 64, 80


def tiny_neox_config(vocab: int = VOCAB, hidden: int = 64, layers: int = 2) -> GPTNeoXConfig:
    return GPTNeoXConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=4 * hidden,
        max_position_embeddings=128,
        eos_token_id=0,
        bos_token_id=0,
        pad_token_id=0,
        use_cache=False,
    )


@dataclass
class Planted:
    model_dir: Path  # save_pretrained directory of the trained model
    planted: torch.Tensor  # [P, 80] the sequences the model was trained on
    unseen: torch.Tensor  # [U, 80] sequences it never saw
    memorized_file: Path  # the planted rows in the memorized-file format
    ppl_file: Path  # the unseen rows (perplexity / retain file)


def random_rows(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (n, SEQ_LEN), generator=g)  # id 0 = EOS never appears


def train_planted(
    tmp: Path, n_planted: int = 20, steps: int = 60, hidden: int = 32, seed: int = 0
) -> Planted:
    """Train a tiny NeoX on ``n_planted`` random rows (plain PyTorch, full batch) and save it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is ~20x faster on a shared, loaded CPU
    try:
        return _train(tmp, n_planted, steps, hidden, seed)
    finally:
        torch.set_num_threads(threads)


def _train(tmp: Path, n_planted: int, steps: int, hidden: int, seed: int) -> Planted:
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(tiny_neox_config(hidden=hidden))
    planted, unseen = random_rows(n_planted, seed + 1), random_rows(64, seed + 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=planted, labels=planted).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model_dir = tmp / "tiny_neox"
    model.save_pretrained(model_dir)
    torch.save(planted, tmp / "memorized.pt")
    torch.save(unseen, tmp / "pile_random.pt")
    return Planted(model_dir, planted, unseen, tmp / "memorized.pt", tmp / "pile_random.pt")
