"""Model construction and loading (TinyMem GPT-2, HF/Pythia) and the MLP adapter."""
