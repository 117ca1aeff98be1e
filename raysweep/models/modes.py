"""Train / eval mode for a block of code, every submodule's own flag restored afterwards (a frozen submodule, e.g. a
teacher kept in eval, stays as it was): the one way the package switches a model's mode temporarily."""

import contextlib

import torch.nn as nn


@contextlib.contextmanager
def mode(model: nn.Module, training: bool):
    flags = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for m, was in flags:
            m.training = was


def eval_mode(model: nn.Module):
    return mode(model, False)


def train_mode(model: nn.Module):
    return mode(model, True)


@contextlib.contextmanager
def modes_kept(model: nn.Module):
    """Whatever the block does to the modes, they are as before when it ends."""
    with mode(model, model.training):
        yield model
