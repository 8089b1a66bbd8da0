"""Imports every method module so that each registers its short name."""
