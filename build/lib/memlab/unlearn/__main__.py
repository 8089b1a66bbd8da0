"""``python -m memlab.unlearn``: unlearn a trained model's memorized rows with one of the eleven
methods, or re-apply a saved Edit.

Examples::

    python -m memlab.unlearn unlearn=balanced_subnet unlearn.ratio=0.05 ckpt=outputs/.../last.ckpt
    python -m memlab.unlearn -m unlearn=glob(*) unlearn.ratio=1e-3,1e-2,5e-2 ckpt=...
    python -m memlab.unlearn apply_edit=outputs/runs/unlearn/<time>/edit.safetensors ckpt=...
"""

from memlab.runs import entry_point
from memlab.unlearn.runner import run

main = entry_point("unlearn", run)

if __name__ == "__main__":
    main()
