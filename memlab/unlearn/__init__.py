"""Machine unlearning: the Edit abstraction, the method registry, neuron/ and weight/ methods, the runner.

``memlab.unlearn.run`` / ``memlab.unlearn.main`` are the runner's entry points (imported lazily, so
``import memlab.unlearn.edit`` stays light).
"""


def __getattr__(name: str):
    if name == "run":
        from memlab.unlearn.runner import run

        return run
    if name == "main":
        from memlab.unlearn.__main__ import main

        return main
    raise AttributeError(f"module 'memlab.unlearn' has no attribute '{name}'")
