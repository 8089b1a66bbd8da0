"""Imports every regularizer module so that each registers its short name."""
