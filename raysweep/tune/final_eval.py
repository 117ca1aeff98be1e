"""The final evaluation: after the front is fixed on validation data, the chosen members' checkpoints on the test
set, as Ray tasks (one per seed, on GPUs when there are any); with ``members: all``, started as trials finish."""

from pathlib import Path
from typing import Any, Dict, List, Optional

from ..config import SweepConfig
from ..evaluation.checkpoints import is_uri
from ..evaluation.suite import masking_flags


def evaluate_members(cfg: SweepConfig, finished: List[Dict], front: List[Dict], records: Dict[str, Dict], use_gpu: bool,
                     printer, started: Optional[Dict[int, Any]] = None) -> None:
    """Evaluates the members ``final_eval.members`` names and records their results and masking flags in their rows
    and in the sweep's records (to be pushed to MLflow)."""
    fe = cfg.final_eval
    if fe.members == "all":
        members = list(finished)
    elif fe.members == "front":
        members = front
    else:
        members = [max(front, key=lambda r: r.get("val_robust_acc", -1))]
    final_evaluate(cfg, members, use_gpu, printer, records=records, started=started)
    for r in members:
        test = {k: v for k, v in r.items() if k.startswith("test_")}
        if not test:
            continue
        rec = records[str(r["trial"])]
        if rec.get("test") != test:
            rec["test"] = test
            rec["test_config"] = eval_signature(cfg)
            rec.setdefault("pending_metrics", {}).update(test)
        flags = masking_flags(test, pgd_aa_gap=fe.pgd_aa_gap)
        rec["masking"] = flags  # what every later reader of the sweep takes as its flags
        r.update({f"masking_{k}": v for k, v in flags.items()})
        rec.setdefault("pending_tags", {}).update({f"masking_{k}": str(v).lower() for k, v in flags.items()})
        raised = [k for k, v in flags.items() if v]
        if raised:
            printer(f"raysweep: warning: trial {r['trial']}: gradient-masking red flag(s): {', '.join(raised)}", flush=True)


def eval_signature(cfg: SweepConfig) -> Dict[str, Any]:
    """What a final evaluation depends on: a resumed sweep reuses results with the same one."""
    fe = cfg.final_eval
    return {"attacks": list(fe.attacks), "n": fe.n, "attack_n": dict(fe.attack_n), "best": fe.best}


def attack_groups(attacks: List[str], n: Optional[int], attack_n: Dict[str, int]) -> List[tuple]:
    """[(n_images, [attacks...])]: attacks sharing an image count run together, the cheap
    full-set ones first. ``None`` means the whole test set."""
    groups: Dict[Optional[int], List[str]] = {}
    for a in attacks:
        groups.setdefault(attack_n.get(a, n), []).append(a)
    return sorted(groups.items(), key=lambda kv: (kv[0] is not None, -(kv[0] or 0)))


_EVAL_TASKS: Dict[bool, Any] = {}


def eval_task(use_gpu: bool):
    """The Ray task that evaluates one seed of one trial's checkpoint on the test set: its last
    weights and, when asked and different, its best-on-validation weights. One task per seed,
    so the seeds of a ``repeats`` trial are evaluated in parallel."""
    if use_gpu in _EVAL_TASKS:
        return _EVAL_TASKS[use_gpu]
    import ray

    @ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0)
    def _eval(spec, ckpt_path, groups, with_best, seed_index):
        import torch
        from ray.train import Checkpoint

        from ..evaluation import evaluate_state
        from ..train.ray_worker import load_state

        torch.set_num_threads(1)
        if use_gpu:  # never a silent CPU fallback (see trainable.trial_device)
            from .trainable import trial_device

            trial_device(True)
        with Checkpoint(path=ckpt_path).as_directory() as d:  # local dir, or downloaded from s3:// etc.
            state = load_state(d)
        st = (state["seeds"] if "seeds" in state else [state])[seed_index]

        def evaluate(weights):
            res: Dict[str, float] = {}
            for n, attacks in groups:
                r = evaluate_state(spec, weights, attacks, n=n)
                res.update({k: v for k, v in r.items() if k != "test_n"})
                res[f"test_n_{'all' if n is None else n}"] = r["test_n"]
                res.setdefault("test_n", r["test_n"])  # the largest set (groups run largest first)
            return res

        best = st.get("best") or {}
        has_best = best.get("model") is not None and best.get("epoch") != st["epoch"]
        return {"last": evaluate(st["model"]), "best": evaluate(best["model"]) if with_best and has_best else None,
                "best_epoch": float(best.get("epoch", st["epoch"]))}

    _EVAL_TASKS[use_gpu] = _eval
    return _eval


def combine_seeds(per_seed: List[Dict[str, Any]], with_best: bool) -> Dict[str, float]:
    from ..train.seeds import summarise_seeds

    out = summarise_seeds([p["last"] for p in per_seed])
    if with_best:
        # the best-on-validation checkpoint: test_best_* (equal to the last where it is the last)
        best = summarise_seeds([p["best"] or p["last"] for p in per_seed])
        out.update({k.replace("test_", "test_best_", 1): v for k, v in best.items()
                    if k.startswith("test_") and not k.startswith("test_n")})
    out["best_epoch"] = max(p["best_epoch"] for p in per_seed)
    return out


def submit_evaluation(cfg: SweepConfig, row: Dict, use_gpu: bool, printer):
    """Start the test-set evaluation of one trial (one Ray task per seed), or None without a checkpoint."""
    ck = row.get("checkpoint_path")
    if not ck or (not is_uri(ck) and not Path(ck).exists()):
        printer(f"raysweep: trial {row['trial']}: no checkpoint to evaluate", flush=True)
        return None
    fe = cfg.final_eval
    groups = attack_groups(list(fe.attacks), fe.n, dict(fe.attack_n))
    spec = spec_of(cfg, row)
    task = eval_task(use_gpu)
    return [task.remote(spec, ck, groups, fe.best, i) for i in range(int(spec.get("repeats", 1)))]


def eager_evaluation(cfg: SweepConfig, records: Dict, to_run: int, use_gpu: bool, printer):
    """A Tune callback: with ``final_eval.members: all`` no selection is needed, so a finished trial's test-set
    evaluation can start while other trials still train, on a CPU that would otherwise idle.
    Evaluations start only once every trial of the sweep has been launched: a Ray Train trial
    still to come would otherwise wait for a CPU an evaluation holds. ``.started`` maps trial
    numbers to their evaluation's object refs, for ``final_evaluate``."""
    from ray.tune import Callback

    class EagerEvaluation(Callback):
        def __init__(self):
            self.started: Dict[int, Any] = {}
            self.finished: List[Dict] = []

        def on_trial_complete(self, iteration, trials, trial, **info):
            rec = records.get(str(trial.config.get("optuna_trial")))
            if rec is not None and rec["status"] == "FINISHED":
                self.finished.append(rec)
            if len(trials) < to_run:
                return
            signature = eval_signature(cfg)
            for r in self.finished:
                if r["trial"] in self.started or (r.get("test") and r.get("test_config") == signature):
                    continue
                row = {"trial": r["trial"], "method": r["method"], "checkpoint_path": r.get("checkpoint_path"),
                       **{f"param:{k}": v for k, v in r["sampled"].items() if k != "method"}}
                ref = submit_evaluation(cfg, row, use_gpu, printer)
                if ref is not None:
                    self.started[r["trial"]] = ref

    return EagerEvaluation()


def final_evaluate(cfg: SweepConfig, members: List[Dict], use_gpu: bool, printer, records: Optional[Dict] = None,
                   started: Optional[Dict[int, Any]] = None):
    """Test-set evaluation of the members' checkpoints, as Ray tasks (in parallel, on GPUs
    when there are any). Runs after selection, so it cannot influence which trials are shown.

    Every seed of a ``repeats`` trial is evaluated: the row gets the mean (``test_<a>_acc``),
    the spread (``_std``) and each seed's value (``_seed<i>``). A member whose record already
    holds results of the same evaluation (a resumed sweep) is not evaluated again; one in
    ``started`` (trial -> object refs, see ``eager_evaluation``) is already being evaluated."""
    import ray

    fe = cfg.final_eval
    groups = attack_groups(list(fe.attacks), fe.n, dict(fe.attack_n))
    signature = eval_signature(cfg)
    started = dict(started or {})
    early = sum(1 for r in members if r["trial"] in started)
    jobs = []
    reused = 0
    for r in members:
        rec = (records or {}).get(str(r["trial"])) or {}
        if rec.get("test") and rec.get("test_config") == signature:
            r.update(rec["test"])
            reused += 1
            continue
        ref = started.pop(r["trial"], None) or submit_evaluation(cfg, r, use_gpu, printer)
        if ref is not None:
            jobs.append((r, ref))
    desc = "; ".join(f"{', '.join(a)} on {'all' if n is None else n} test images" for n, a in groups)
    printer(f"raysweep: final evaluation of {len(jobs)} checkpoint(s) on the test set ({desc})"
            + (f"; {reused} already evaluated" if reused else "")
            + (f"; {early} started as their trials finished" if early else ""), flush=True)
    for r, refs in jobs:
        try:
            r.update(combine_seeds(ray.get(refs), fe.best))
        except Exception as e:  # one broken checkpoint must not hide the others' results
            printer(f"raysweep: trial {r['trial']}: final evaluation failed: {type(e).__name__}: {e}", flush=True)
    for refs in started.values():  # started for a trial that is no member after all
        for ref in refs:
            ray.cancel(ref)


def spec_of(cfg: SweepConfig, row: Dict) -> Dict:
    sampled = {k[len("param:"):]: v for k, v in row.items() if k.startswith("param:")}
    sampled["method"] = row["method"]
    return cfg.trial_spec(sampled).to_dict()

