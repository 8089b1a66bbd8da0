"""GPU check of the production path (driven by ``bench/gpu_check.sh``; needs a CUDA machine).

``plant``: build a random GPT-NeoX from ``model=<preset>`` (tiny_neox or pythia_160m_random), train
it on 32 random 80-token rows until it memorizes them, save it with ``save_pretrained`` and write
the memorized-sequence file (planted rows) and a perplexity/retain file (unseen rows).
``unlearn``: run BalancedSubnet through the unlearning runner on that model
(``model=hf model.path=...``, ``data=pythia_memorized``) under a trainer preset
(``deepspeed_stage_2`` / ``deepspeed_stage_3``), and print wall time, peak GPU memory and
memorization before → after as one line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

CONF = str(Path(__file__).resolve().parents[1] / "conf")
SEQ_LEN, N_PLANTED, N_OTHER = 80, 32, 256


def plant(preset: str, out: Path, steps: int, vocab: int) -> None:
    from memlab.data.lm_data import LMData
    from memlab.models.build import build_model

    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={preset}"])
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(1, vocab, (N_PLANTED + N_OTHER, SEQ_LEN), generator=g)
    empty = torch.zeros(0, dtype=torch.long)
    data = LMData(
        train=rows,
        train_dist=empty,
        train_twin=empty,
        train_group=empty,
        dist_names=["pile"],
        test={},
        artifact=None,
        vocab_size=vocab,
        pad_id=0,
        eos_id=0,
        bos_id=0,
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, data).cuda()
    planted = rows[:N_PLANTED].cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=planted, labels=planted).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "model")
    torch.save(rows[:N_PLANTED].clone(), out / "memorized.pt")
    torch.save(rows[N_PLANTED:].clone(), out / "pile_random.pt")
    print(f"plant {preset}: {steps} steps, loss {loss.item():.3f}, {time.perf_counter() - t0:.1f}s")


def unlearn(work: Path, trainer: str, extra: list[str]) -> None:
    from memlab.unlearn.runner import run

    overrides = [
        "model=hf",
        f"model.path={work / 'model'}",
        "model.dtype=fp32",
        "data=pythia_memorized",
        f"data.memorized_file={work / 'memorized.pt'}",
        f"data.ppl_file={work / 'pile_random.pt'}",
        "eval=pythia",
        f"trainer={trainer}",
        "trainer.devices=1",
        "unlearn=balanced_subnet",
        "results=false",
        *extra,
    ]
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("unlearn", overrides=overrides)
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.paths.output_dir = str(work / f"run_{trainer}")
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    metrics = run(cfg)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 1024**3
    before = metrics.get("before/mem/perc", float("nan"))
    after = metrics.get("after/mem/perc", float("nan"))
    print(
        json.dumps(
            {
                "work": work.name,
                "trainer": trainer,
                "seconds": round(seconds, 1),
                "peak_gpu_gb": round(peak, 2),
                "mem_before": before,
                "mem_after": after,
                "ppl_before": metrics.get("before/util/ppl"),
                "ppl_after": metrics.get("after/util/ppl"),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plant")
    p.add_argument("--preset", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--vocab", type=int, default=50304)
    u = sub.add_parser("unlearn")
    u.add_argument("--work", type=Path, required=True)
    u.add_argument("--trainer", required=True)
    u.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.cmd == "plant":
        plant(args.preset, args.out, args.steps, args.vocab)
    else:
        unlearn(args.work, args.trainer, args.overrides)


if __name__ == "__main__":
    main()
