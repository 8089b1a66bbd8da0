"""Machine unlearning: the method table, neuron/ and weight/ methods, the runner (``run(cfg)``)."""
