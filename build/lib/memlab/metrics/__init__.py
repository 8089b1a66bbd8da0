"""Memorization and utility metrics: one implementation serves training, unlearning and Pythia."""
