"""Memory needed per GPU to unlearn / fine-tune Pythia models under each multi-GPU preset.

Computed, not measured: parameter counts from the GPT-NeoX architecture in
``conf/model/pythia_*.yaml`` (``arch``), times bytes per parameter for weights, gradients, optimizer
states and masks, divided over GPUs the way each ZeRO stage shards them (Rajbhandari et al. 2020,
"ZeRO"). Activations, CUDA context and communication buffers (~2-4 GB) come on top.

Mask training (Subnet / BalancedSubnet): the model is frozen in 16-bit,
only fp32 scores over the MLP weight matrices train, with SGD momentum (4 B weight + 4 B grad + 4 B
momentum per score) plus a 1-byte boolean mask per MLP weight. Full fine-tuning: every parameter
trains with mixed-precision AdamW (2 B weight + 2 B grad + 12 B fp32 master/m/v). Edit files hold
the flat int32 indices of the zeroed entries (ratio x MLP weights x 4 B).

    python bench/memory_table.py [--gpus 1 2 4 8] [--ratio 0.05]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
MODELS = ["pythia_160m", "pythia_2.8b", "pythia_6.9b"]
GB = 1024**3


@dataclass
class Sizes:
    total: int  # all parameters
    mlp: int  # MLP weight matrices (what Subnet masks)
    n_layer: int  # under ZeRO-3 the boolean mask of one layer at a time is on the GPU


def neox_sizes(*, n_layer: int, hidden: int, inner: int, vocab: int) -> Sizes:
    """Parameter counts of a GPT-NeoX (untied input/output embeddings, biases everywhere)."""
    attn = 3 * hidden * hidden + 3 * hidden + hidden * hidden + hidden
    mlp_w = 2 * hidden * inner
    mlp = mlp_w + inner + hidden
    norms = 4 * hidden
    total = 2 * vocab * hidden + n_layer * (attn + mlp + norms) + 2 * hidden
    return Sizes(total, n_layer * mlp_w, n_layer)


def mask_training_bytes(s: Sizes, stage: str, gpus: int) -> tuple[float, float]:
    """(GPU bytes, CPU bytes) per GPU for Subnet/BalancedSubnet under a preset."""
    frozen, trained, mask = 2 * s.total, 12 * s.mlp, s.mlp
    if stage == "ddp":
        return frozen + trained + mask, 0.0
    if stage == "stage_2":  # grads + optimizer state sharded
        return frozen + 4 * s.mlp + 8 * s.mlp / gpus + mask, 0.0
    if stage == "stage_3":  # everything sharded; the boolean mask is per layer (transient)
        return (frozen + trained) / gpus + mask / s.n_layer, 0.0
    return mask / s.n_layer, (frozen + trained) / gpus  # stage_3_offload


def finetune_bytes(s: Sizes, stage: str, gpus: int) -> tuple[float, float]:
    """(GPU bytes, CPU bytes) per GPU for full mixed-precision AdamW fine-tuning."""
    w, g, o = 2 * s.total, 2 * s.total, 12 * s.total
    if stage == "ddp":
        return w + g + o, 0.0
    if stage == "stage_2":
        return w + (g + o) / gpus, 0.0
    if stage == "stage_3":
        return (w + g + o) / gpus, 0.0
    return 0.0, (w + g + o) / gpus


STAGES = ["ddp", "stage_2", "stage_3", "stage_3_offload"]


def table(title: str, fn, gpus: list[int]) -> str:
    head = ["model", "params", "stage"] + [f"{g} GPU{'s' if g > 1 else ''}" for g in gpus]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in MODELS:
        arch = OmegaConf.load(CONF / f"{name}.yaml").arch
        s = neox_sizes(n_layer=arch.n_layer, hidden=arch.hidden, inner=arch.inner, vocab=arch.vocab)
        for stage in STAGES:
            cells = []
            for g in gpus:
                gpu, cpu = fn(s, stage, g)
                cells.append(f"{gpu / GB:.1f}" + (f" (+{cpu / GB:.1f} CPU)" if cpu else ""))
            lines.append(f"| {name} | {s.total / 1e9:.2f}B | {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--ratio", type=float, default=0.05, help="Subnet ratio for Edit sizes")
    args = parser.parse_args()
    print("GB per GPU (model state only; add activations + ~2-4 GB of buffers)\n")
    print(table("Mask training (Subnet / BalancedSubnet)", mask_training_bytes, args.gpus))
    print()
    print(table("Full fine-tuning (mixed-precision AdamW)", finetune_bytes, args.gpus))
    print("\n### Evaluation only and saved artefacts\n")
    edit_col = f"Edit file at ratio {args.ratio:g} (MB)"
    print(f"| model | 16-bit weights (GB) | MLP weights | {edit_col} | full fp16 model (GB) |")
    print("|---|---|---|---|---|")
    for name in MODELS:
        arch = OmegaConf.load(CONF / f"{name}.yaml").arch
        s = neox_sizes(n_layer=arch.n_layer, hidden=arch.hidden, inner=arch.inner, vocab=arch.vocab)
        edit_mb = args.ratio * s.mlp * 4 / 1024**2
        print(
            f"| {name} | {2 * s.total / GB:.1f} | {s.mlp / 1e9:.2f}B | {edit_mb:.0f} | "
            f"{2 * s.total / GB:.1f} |"
        )


if __name__ == "__main__":
    main()
