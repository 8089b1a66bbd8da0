"""Audits of a (mitigated) model's memorization: how robust is its forgetting?

``python -m memlab.audit ckpt=<checkpoint> [edit=<edit.safetensors>]`` loads a trained model and its
training data, applies an unlearning Edit, and measures (docs/audit.md):

- relearning: how fast a fine-tune on a tenth of the forget rows (or on clean rows) brings back the
  memorization of the rest (:mod:`memlab.audit.relearn`);
- quantization: memorization after int8 / int4 weight rounding (:mod:`memlab.audit.quant`);
- membership inference against exactly known members and non-members (:mod:`memlab.audit.mia`);
- extraction curves: greedy k-token and (n, p)-discoverable extraction (:mod:`memlab.audit.extract`);
- the same for a model retrained without the forget rows (:mod:`memlab.audit.oracle`).
"""
