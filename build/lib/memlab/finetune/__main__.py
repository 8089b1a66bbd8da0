"""``python -m memlab.finetune``: fine-tune a trained model on clean data (spec §12).

Examples::

    python -m memlab.finetune finetune=both ckpt=outputs/runs/train/<time>/checkpoints/last.ckpt
    python -m memlab.finetune finetune=clean finetune.inherit_optimizer=false ckpt=...
    python -m memlab.finetune finetune=extra ckpt=... ckpt_path=outputs/runs/finetune/<time>/checkpoints/last.ckpt
"""

from __future__ import annotations

from memlab.finetune.runner import run
from memlab.runs import entry_point

main = entry_point("finetune", run)


if __name__ == "__main__":
    main()
