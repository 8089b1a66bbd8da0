"""Imports every method module so that each registers its short name."""

import memlab.unlearn.neuron.activations  # noqa: F401
import memlab.unlearn.neuron.hard_concrete  # noqa: F401
import memlab.unlearn.neuron.integrated_gradients  # noqa: F401
import memlab.unlearn.neuron.slimming  # noqa: F401
import memlab.unlearn.neuron.zero_out  # noqa: F401
import memlab.unlearn.weight.durable  # noqa: F401
import memlab.unlearn.weight.greedy  # noqa: F401
import memlab.unlearn.weight.second_order  # noqa: F401
import memlab.unlearn.weight.subnet  # noqa: F401
