"""bench/rrm_probe.py on a tiny trained RRM trial and a standard-training control: the radius curve is PGD-20
accuracy at each radius (at radius 0, the clean accuracy), for the student and its teacher; the control has no
teacher and no feature agreement to measure."""

import importlib.util
import pathlib

import torch

from raysweep.train import TrialRun
from raysweep.train.spec import DatasetSpec, ModelSpec, ThreatSpec, TrainSpec, TrialSpec

_spec = importlib.util.spec_from_file_location("rrm_probe", pathlib.Path(__file__).resolve().parents[1] / "bench" / "rrm_probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def _trained(method, **params):
    torch.set_num_threads(1)
    spec = TrialSpec(method=method, method_params=params, dataset=DatasetSpec(name="synthetic", val_size=64, train_size=256),
                     model=ModelSpec(name="resnet_small", width=4), threat=ThreatSpec(eps=0.3),
                     train=TrainSpec(epochs=1, batch_size=64, optimizer="adam", lr=5e-3, weight_decay=0.0), device="cpu")
    run = TrialRun(spec, device="cpu")
    run.ensure_teacher()
    run.run_epoch()
    return spec.to_dict(), run.state_dict()


def test_radius_curve_of_a_student_its_teacher_and_a_control():
    spec, state = _trained("rrm", teacher_epochs=1)
    out = probe.probe_seed(spec, state, 48, radii=[0.0, 0.1, 0.3])
    assert set(out["pgd20_acc_at"]) == {"0.0", "0.1", "0.3"} and set(out["teacher_pgd20_acc_at"]) == {"0.0", "0.1", "0.3"}
    assert out["pgd20_acc_at"]["0.0"] == out["student_acc_clean"]  # no ball, no attack
    assert out["teacher_pgd20_acc_at"]["0.0"] == out["teacher_acc_clean"]
    assert out["pgd20_acc_at"]["0.3"] <= out["student_acc_clean"]
    spec, state = _trained("standard")
    ctl = probe.probe_seed(spec, state, 48, radii=[0.0, 0.3])
    assert set(ctl) == {"pgd20_acc_at"} and ctl["pgd20_acc_at"]["0.3"] <= ctl["pgd20_acc_at"]["0.0"]
