"""Sweeps: grids expanded in Python, launched through Hydra launchers, one results row per run."""
