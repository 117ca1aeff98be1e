"""raysweep: multi-objective sweeps of efficient adversarial training.

The torch core (``raysweep.data``, ``raysweep.models``, ``raysweep.attacks``,
``raysweep.methods``, ``raysweep.train.loop``) imports nothing but torch and the
standard library, so it can be benchmarked on a machine that has only torch.
"""

__version__ = "0.1.0"
