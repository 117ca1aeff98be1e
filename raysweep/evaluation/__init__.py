"""Final (test-set) evaluation of trained checkpoints. Torch-only.

Model selection never reads the test set: trials report on the validation split, and only
the front's members (or the checkpoints a user names) are evaluated here."""

from .suite import ATTACK_SUITE, evaluate_state, load_model

__all__ = ["ATTACK_SUITE", "evaluate_state", "load_model"]
