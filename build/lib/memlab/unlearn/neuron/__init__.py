"""Neuron-level unlearning (Chang et al. 2024, "Do Localization Methods Actually Localize
Memorized Data in LLMs?" — MemPi): five attribution methods that each score every FFN hidden
unit [n_layer, inner], and one shared ablation (:mod:`.ablation`) that silences the top-scored
units of every layer. All model access goes through :class:`memlab.models.mlp_adapter.MLPAdapter`
and one activation-patching mechanism (:mod:`.patching`)."""
