"""LM training as a LightningModule, plus the evaluation callback."""
