"""Why an RRM student is (or is not) robust: does matching the teacher's features on clean images
carry into the eps-ball?

For every seed of the RRM trial of a reproduction sweep, on the first N test images:
- the student's accuracy, clean and under PGD-20 (eps of the sweep, step eps/4... as the final
  evaluation: raysweep.attacks.make_attack("pgd", steps=20));
- the feature agreement the student was trained for, cos(P(phi_S(x)), phi_T(x)) (P: the
  trial's learned projection), on the clean images and on the student's own PGD-20 points;
- the teacher's accuracy on those PGD-20 points (does the perturbation fool a robust model, or
  only the student?), and the teacher's own PGD-20 accuracy for reference.
With ``--radii``, also the PGD-20 accuracy at smaller radii, of the students, their teachers and the sweep's
standard-training control (same architecture, clean images, no teacher): does the student keep *some* of the
teacher's robustness where the ball is smaller, or is it exactly as robust as clean training?
Torch only; reads the trial's checkpoint (teacher and projection are in it, nothing retrains). Seeds of
configurations this machine's sweep does not have keep their committed entries in the output file.

    .venv/bin/python bench/rrm_probe.py reproduce-rrm-mnist            # writes bench/results/rrm_probe_mnist.json
    .venv/bin/python bench/rrm_probe.py reproduce-rrm-mnist --radii 0.05,0.1,0.2
"""

import argparse
import copy
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]


def latest_state(experiment: str):
    from raysweep.sweep_state import latest_state as latest

    state = latest(REPO / "raysweep_runs", experiment)
    if state is None:
        sys.exit(f"rrm_probe: no sweep of {experiment!r} under raysweep_runs/")
    return state


def features(model, x):
    """What the classifier reads (phi), caught by a pre-hook as the method does."""
    got = {}
    h = model.fc.register_forward_pre_hook(lambda m, inp: got.__setitem__("phi", inp[0]))
    try:
        logits = model(x)
    finally:
        h.remove()
    return got["phi"], logits


def _restore(spec_dict, seed_state, n: int):
    from raysweep.train.loop import TrialRun
    from raysweep.train.spec import TrialSpec

    spec = TrialSpec.from_dict(spec_dict)
    run = TrialRun(spec, device="cpu")
    run.load_state_dict(seed_state)  # restores the student (and an RRM trial's teacher and projection)
    x = run.data.test.x[:n].float() / 255.0 if run.data.test.x.dtype == torch.uint8 else run.data.test.x[:n]
    return spec, run, x, run.data.test.y[:n]


def pgd20_acc(model, x, y, eps: float, norm: str) -> float:
    from raysweep.attacks.evaluate import make_attack

    x_adv = make_attack("pgd", eps, norm, steps=20)(model, x, y)
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


def radius_curve(spec, run, x, y, radii):
    """PGD-20 accuracy at each radius, of the trained model and (RRM) its teacher."""
    out = {"pgd20_acc_at": {str(r): pgd20_acc(run.raw_model.eval(), x, y, r, spec.threat.norm) for r in radii}}
    teacher = getattr(run.method, "teacher", None)
    if teacher is not None:
        out["teacher_pgd20_acc_at"] = {str(r): pgd20_acc(teacher.eval(), x, y, r, spec.threat.norm) for r in radii}
    return out


def probe_seed(spec_dict, seed_state, n: int, radii=()):
    from raysweep.attacks.evaluate import make_attack

    spec, run, x, y = _restore(spec_dict, seed_state, n)
    if run.method.name != "rrm":  # the control: its accuracy at each radius is all there is to measure
        return radius_curve(spec, run, x, y, radii) if radii else {}
    student, teacher, proj = run.raw_model.eval(), run.method.teacher.eval(), run.method.projection
    eps = spec.threat.eps
    pgd = make_attack("pgd", eps, spec.threat.norm, steps=20)
    x_adv = pgd(student, x, y)
    t_adv = pgd(teacher, x, y)
    with torch.no_grad():
        out = {}
        for name, inp in (("clean", x), ("student_pgd20", x_adv)):
            phi_s, logits = features(student, inp)
            phi_t = teacher.features(inp)
            p = proj(phi_s) if proj is not None else phi_s
            out[f"feature_cos_{name}"] = float(F.cosine_similarity(p, phi_t, dim=1).mean())
            out[f"student_acc_{name}"] = float((logits.argmax(1) == y).float().mean())
            out[f"teacher_acc_{name}"] = float((teacher(inp).argmax(1) == y).float().mean())
        out["teacher_acc_own_pgd20"] = float((teacher(t_adv).argmax(1) == y).float().mean())
        out["linf_of_student_pgd20"] = float((x_adv - x).abs().flatten(1).max(1).values.mean())
    if radii:
        out.update(radius_curve(spec, run, x, y, radii))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", nargs="?", default="reproduce-rrm-mnist")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--radii", default="", help="comma-separated smaller radii, e.g. 0.05,0.1,0.2 (the sweep's eps is added)")
    args = ap.parse_args(argv)
    from raysweep.evaluation.checkpoints import load_checkpoint

    torch.manual_seed(0)
    state = latest_state(args.experiment)
    recs = [r for r in state["trials"].values() if r["status"] == "FINISHED"
            and (r["method"] == "rrm" or (args.radii and r["method"] == "standard"))]
    radii = sorted({float(v) for v in args.radii.split(",") if v.strip()}
                   | ({float(recs[0]["spec"]["threat"]["eps"])} if args.radii and recs else set()))
    results = []
    for rec in sorted(recs, key=lambda r: r["trial"]):
        ck = load_checkpoint(rec["checkpoint_path"])
        seeds = ck["seeds"] if "seeds" in ck else [ck]
        for i, st in enumerate(seeds):
            spec = copy.deepcopy(rec["spec"])
            spec["repeats"] = 1
            spec["train"]["seed"] = int(spec["train"].get("seed", 0)) + i
            r = {"trial": rec["trial"], "label": rec.get("label"), "method": rec["method"], "seed": i,
                 "sweep": Path(state["_sweep_dir"]).name, **probe_seed(spec, st, args.n, radii)}
            results.append(r)
            print(json.dumps(r), flush=True)
    ds = recs[0]["spec"]["dataset"]["name"] if recs else "unknown"
    out = REPO / "bench" / "results" / f"rrm_probe_{ds}.json"
    probed = {r["label"] for r in results}
    kept = [r for r in (json.loads(out.read_text())["results"] if out.is_file() else []) if r.get("label") not in probed]
    out.write_text(json.dumps({"experiment": args.experiment, "n": args.n, "radii": radii, "results": kept + results},
                              indent=1))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
