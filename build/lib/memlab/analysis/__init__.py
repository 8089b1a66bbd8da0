"""Analysis side of memlab: sweep plans, the results store, best-run selection, reports and plots.

Modules import lazily (no torch / matplotlib / wandb at package import) so that a sweep driver or a
results-store reader starts fast.
"""
