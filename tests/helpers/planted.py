"""A tiny random GPT-NeoX that memorized planted sequences — the CPU stand-in for Pythia + MemPi
files (tests of the production path: loading, mining, unlearning through the runner)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf
from transformers import GPTNeoXForCausalLM

from memlab.models.build import build_model
from tests.helpers.configs import CONF_DIR

VOCAB, SEQ_LEN = 64, 80
CONF = Path(CONF_DIR)


def tiny_neox(hidden: int = 32, layers: int = 2, vocab: int = VOCAB) -> GPTNeoXForCausalLM:
    """A random GPT-NeoX from the project's ``model=tiny_neox`` builder (EOS = pad = 0)."""
    cfg = OmegaConf.load(CONF / "model" / "tiny_neox.yaml")
    cfg.merge_with({"hidden": hidden, "inner": 4 * hidden, "n_layer": layers})
    data = SimpleNamespace(vocab_size=vocab, max_ctx=128, bos_id=0, eos_id=0, pad_id=0)
    return build_model(cfg, data)


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
    tmp: Path, *, n_planted: int = 20, steps: int = 60, hidden: int = 32, seed: int = 0
) -> Planted:
    """Train a tiny NeoX on ``n_planted`` random rows (plain PyTorch, full batch) and save it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is ~20x faster on a shared, loaded CPU
    try:
        return _train(tmp, n_planted=n_planted, steps=steps, hidden=hidden, seed=seed)
    finally:
        torch.set_num_threads(threads)


def _train(tmp: Path, *, n_planted: int, steps: int, hidden: int, seed: int) -> Planted:
    torch.manual_seed(seed)
    model = tiny_neox(hidden)
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
