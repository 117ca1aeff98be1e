"""Contract every registered method must meet (runs over ``list_methods()``, so methods added
later are covered automatically): finite loss, perturbations inside the threat ball and the
image box, gradients reaching the trained parameters, determinism under a fixed seed, a
positive cost, and Params defaults that survive a YAML round trip."""

import copy
import dataclasses
import math

import pytest
import torch
import yaml

from raysweep.hparams import build_params, parse_eps_relative
from raysweep.methods import Method, StepContext, get_method, list_methods
from raysweep.models import build_model
from raysweep.train.loop import TrialRun, build_method
from raysweep.train.spec import DatasetSpec, ModelSpec, ThreatSpec, TrainSpec, TrialSpec

EPS = 0.3
NUM_CLASSES = 10
INPUT_SHAPE = (1, 28, 28)
METHODS = list_methods()

_RUNS = {}  # method name -> (TrialRun, initial raw_model state, x, y) for methods that need setup



def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n,) + INPUT_SHAPE, generator=g)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    return x, y


def _setup_run(name):
    if name not in _RUNS:
        spec = TrialSpec(method=name, dataset=DatasetSpec(name="synthetic", val_size=64, train_size=256),
                         model=ModelSpec(name="resnet_small", width=4), threat=ThreatSpec(eps=EPS),
                         train=TrainSpec(epochs=1, batch_size=16), device="cpu")
        if _needs_teacher(get_method(name)):
            spec.method_params = {"teacher_epochs": 1}
        run = TrialRun(spec, device="cpu")
        run.ensure_teacher()
        x, y, _, _ = next(iter(run.loader))
        _RUNS[name] = (run, copy.deepcopy(run.raw_model.state_dict()), x[:8].clone(), y[:8].clone())
    return _RUNS[name]


def _needs_teacher(cls) -> bool:
    return cls.teacher_request is not Method.teacher_request


def make(name):
    """(method, ctx, x, y) with a freshly initialised model (same weights on every call)."""
    cls = get_method(name)
    if getattr(cls, "needs_setup", False) or _needs_teacher(cls):
        run, state, x, y = _setup_run(name)
        run.raw_model.load_state_dict(state)
        run.raw_model.train()
        run.raw_model.zero_grad(set_to_none=True)
        ctx = StepContext(run.model, run.raw_model, 0, run.data.num_classes, run.data.input_shape)
        return run.method, ctx, x, y
    torch.manual_seed(0)
    model = build_model("resnet_small", NUM_CLASSES, INPUT_SHAPE, width=4, blocks_per_stage=1)
    model.train()
    method = build_method(TrialSpec(method=name, threat=ThreatSpec(eps=EPS)), NUM_CLASSES)
    x, y = _batch()
    return method, StepContext(model, model, 0, NUM_CLASSES, INPUT_SHAPE), x, y


def _step(name, seed=1):
    method, ctx, x, y = make(name)
    torch.manual_seed(seed)
    res = method.step(ctx, x, y)
    return method, ctx, x, y, res


@pytest.mark.parametrize("name", METHODS)
def test_loss_finite_and_perturbation_in_ball(name):
    method, ctx, x, y, res = _step(name)
    assert res.loss.dim() == 0 and torch.isfinite(res.loss)
    assert res.logits.shape == (len(y), NUM_CLASSES) and not res.logits.requires_grad
    if res.x_adv is not None:
        eps = method.threat.eps
        assert res.x_adv.shape == x.shape
        assert (res.x_adv - x).abs().max().item() <= eps + 1e-6
        assert res.x_adv.min().item() >= 0.0 and res.x_adv.max().item() <= 1.0
    if res.per_example_loss is not None:
        assert res.per_example_loss.shape == (len(y),)
        assert not res.per_example_loss.requires_grad
        assert torch.isfinite(res.per_example_loss).all()


@pytest.mark.parametrize("name", METHODS)
def test_gradients_reach_trained_parameters(name):
    method, ctx, x, y, res = _step(name)
    res.loss.backward()
    model = ctx.raw_model
    if getattr(type(method), "partial_network", False):
        # a subnetwork ran: only the always-executed parts must get gradients
        required = list(model.stem.parameters()) + list(model.fc.parameters())
    else:
        required = [p for p in model.parameters() if p.requires_grad]
    names = {id(p): n for n, p in model.named_parameters()}
    for p in required:
        assert p.grad is not None, f"{name}: no gradient for {names.get(id(p))}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {names.get(id(p))}"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in required)


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_first_loss(name):
    a = _step(name, seed=123)[-1].loss.item()
    b = _step(name, seed=123)[-1].loss.item()
    assert a == b


@pytest.mark.parametrize("name", METHODS)
def test_cost_positive(name):
    res = _step(name)[-1]
    assert isinstance(res.cost, (int, float)) and math.isfinite(res.cost) and res.cost > 0


@pytest.mark.parametrize("name", METHODS)
def test_model_mode_restored(name):
    method, ctx, x, y, res = _step(name)
    assert ctx.raw_model.training
    assert all(m.training for m in ctx.raw_model.modules())


@pytest.mark.parametrize("name", METHODS)
def test_params_defaults_yaml_round_trip(name):
    cls = get_method(name)
    assert cls.name == name and cls.paper and cls.fidelity in ("faithful", "reconstruction")
    assert dataclasses.is_dataclass(cls.Params)
    defaults = dataclasses.asdict(cls.Params())
    loaded = yaml.safe_load(yaml.safe_dump(defaults))
    built, errors = build_params(cls.Params, loaded, EPS)
    assert errors == []
    # ε-relative defaults ("eps/4") are resolved against ε when a config is built
    expected = {f.name: parse_eps_relative(defaults[f.name], EPS) if f.metadata.get("scale_by_eps") else defaults[f.name]
                for f in dataclasses.fields(cls.Params)}
    assert built == cls.Params(**expected)


@pytest.mark.parametrize("name", METHODS)
def test_declared_cost_equals_the_passes_it_runs(name):
    """``StepResult.cost`` is what the step really computes: every conv/linear call of the step
    and of its loss's backward, counted by MACs (forward 1/3, backward 2/3 of a pass)."""
    from raysweep.train.passes import count_passes

    method, ctx, x, y = make(name)
    torch.manual_seed(1)
    with count_passes(ctx.raw_model, INPUT_SHAPE) as count:
        res = method.step(ctx, x, y)
        res.loss.backward()
    assert count.units / len(y) == pytest.approx(res.cost, rel=1e-6), f"{name}: declared {res.cost}"
