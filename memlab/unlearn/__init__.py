"""Machine unlearning: the Edit abstraction, the method registry, neuron/ and weight/ methods, the runner."""
