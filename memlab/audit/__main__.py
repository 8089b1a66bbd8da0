"""``python -m memlab.audit``: audit a (mitigated) model's memorization (docs/audit.md).

Examples::

    python -m memlab.audit ckpt=outputs/runs/train/<time>/checkpoints/last.ckpt
    python -m memlab.audit ckpt=... edit=outputs/runs/unlearn/<time>/edit.safetensors oracle=true
    python -m memlab.audit ckpt=... relearn.steps=20 quant.group_size=64
"""

from memlab.audit.runner import run
from memlab.runs import entry_point

main = entry_point("audit", run)

if __name__ == "__main__":
    main()
