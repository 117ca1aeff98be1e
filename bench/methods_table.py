"""Every method on MNIST at ε = 0.3 with the same epoch budget and the same model, measured
side by side in one process: clean and PGD-20 test accuracy, train_time_s and cost relative
to PGD-AT (and to FGSM-RS), next to the ratio the arithmetic predicts.

Torch only (no Ray, Optuna or MLflow), so it also runs on a GPU machine that has only torch:

    .venv/bin/python bench/methods_table.py                    # the README's table (CPU: ~15 min)
    .venv/bin/python bench/methods_table.py --epochs 1 --train-size 2000 --n-test 200   # a quick look

Selection is not involved: every method runs once with its paper defaults at this budget;
test accuracy is measured on the last epoch's weights.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import torch


from raysweep.evaluation import evaluate_state  # noqa: E402
from raysweep.train import LocalReporter, run_trial  # noqa: E402

# name -> (method, method params, pruning policy); every entry trains the same model
RUNS = {
    "pgd_at (PGD-10)": ("pgd_at", {"steps": 10}, None),
    "fgsm_rs": ("fgsm_rs", {}, None),
    "fp_better (p_L=0.5)": ("fp_better", {"keep_prob_last": 0.5, "rate": 0.0}, None),
    "pgd_at + pruning keep 0.3": ("pgd_at", {"steps": 10}, {"mode": "static", "keep": 0.3, "rule": "low", "warmup_epochs": 1}),
    "trades (TRADES-10)": ("trades", {"steps": 10}, None),
    "mart": ("mart", {"steps": 10}, None),
    "backward_smoothing": ("backward_smoothing", {}, None),
    "local_ball": ("local_ball", {}, None),
    "rrm (teacher: fgsm_rs, trained in-trial)": ("rrm", {"teacher": "train", "teacher_method": "fgsm_rs",
                                                         "teacher_method_params": {}}, None),
}


def predicted_cost(name, method, params, pruning, epochs, executed_fraction=None):
    """Passes per example per epoch from the algorithm alone (clean-epoch units)."""
    k = params.get("steps", 10)
    per_epoch = {
        "pgd_at": k + 1, "fgsm_rs": 2.0, "trades": k + 3 + 1 / 3, "mart": k + 2,  # TRADES: f(x) twice, as official
        "backward_smoothing": 1 + 3 + 1 / 3, "local_ball": 1 + 2 + 1, "rrm": 1 + 1 / 3,
        "fp_better": 2.0 * (executed_fraction or 0.75),
    }[method]
    total = per_epoch * epochs
    if pruning:  # warm-up epochs on everything, the rest on the kept fraction
        w = pruning["warmup_epochs"]
        total = per_epoch * (w + (epochs - w) * pruning["keep"])
    if method == "rrm":  # the teacher (FGSM-RS, same epochs) is part of the bill
        total += 2.0 * epochs
    return total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--model", default="resnet_small", help="a residual model, so FP-Better can sample subnetworks")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", help="run names to include (default: all)")
    ap.add_argument("--out", default="bench/results/methods_mnist")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    # warm-up (allocator, kernels, lazy inits) so the first method measured is not penalised
    run_trial({"method": "fgsm_rs", "dataset": {"name": "mnist", "val_size": 100, "train_size": 512},
               "model": {"name": args.model, "width": args.width}, "threat": {"eps": 0.3},
               "train": {"epochs": 1, "batch_size": 128}}, device=device)
    for name, (method, params, pruning) in RUNS.items():
        if args.only and name not in args.only and method not in args.only:
            continue
        spec = {
            "method": method, "method_params": params,
            "dataset": {"name": "mnist", "val_size": 1000, "train_size": args.train_size},
            "model": {"name": args.model, "width": args.width}, "threat": {"eps": 0.3},
            "train": {"epochs": args.epochs, "batch_size": 128, "lr": 0.005, "optimizer": "adam", "weight_decay": 0.0,
                      "schedule": "cyclic", "eps_warmup": 0.3},
            "eval": {"val_pgd_steps": 10, "co_action": "flag"},
        }
        if pruning:
            spec["pruning"] = pruning
        rep = LocalReporter()
        t0 = time.perf_counter()
        hist = run_trial(spec, rep, device=device)
        wall = time.perf_counter() - t0
        test = evaluate_state(spec, rep.last_state["model"], ["clean", "pgd20"], n=args.n_test, device=device)
        last = hist[-1]
        frac = last.get("mean_executed_fraction")
        rows.append({"run": name, "method": method, "test_clean": test["test_clean_acc"], "test_pgd20": test["test_pgd20_acc"],
                     "val_robust": last["val_robust_acc"], "train_time_s": last["train_time_s"], "cost": last["cost"],
                     "teacher_time_s": last.get("teacher_time_s"), "teacher_cost": last.get("teacher_cost"),
                     "predicted_cost": predicted_cost(name, method, params, pruning, args.epochs, frac),
                     "wall_s": wall, "catastrophic_overfit": last.get("catastrophic_overfit", 0.0)})
        print(f"{name}: train_time_s={last['train_time_s']:.1f} cost={last['cost']:.2f} "
              f"test clean={test['test_clean_acc']:.3f} pgd20={test['test_pgd20_acc']:.3f}", flush=True)
    ref = next((r for r in rows if r["run"].startswith("pgd_at (")), rows[0])
    fgsm = next((r for r in rows if r["method"] == "fgsm_rs"), None)
    lines = [
        f"MNIST, ε = 0.3 (L∞), {args.model} (width {args.width}), {args.epochs} epochs on {args.train_size} training images, "
        f"batch 128, Adam 5e-3 cyclic; test accuracy on {args.n_test} test images (PGD-20, α = ε/4). "
        f"Machine: {platform.processor() or platform.machine()}, {args.threads} thread(s), device {device}, torch {torch.__version__}.",
        "",
        "| method | clean | PGD-20 | train_time_s | time / PGD-AT | cost / PGD-AT | predicted / PGD-AT | time / FGSM-RS | cost / FGSM-RS | (time ratio) / (cost ratio) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t_ratio = r["train_time_s"] / ref["train_time_s"]
        c_ratio = r["cost"] / ref["cost"]
        tf = r["train_time_s"] / fgsm["train_time_s"] if fgsm else float("nan")
        cf = r["cost"] / fgsm["cost"] if fgsm else float("nan")
        lines.append(f"| {r['run']} | {r['test_clean']:.3f} | {r['test_pgd20']:.3f} | {r['train_time_s']:.1f} | {t_ratio:.2f} | "
                     f"{c_ratio:.2f} | {r['predicted_cost'] / ref['predicted_cost']:.2f} | {tf:.2f} | {cf:.2f} | {t_ratio / c_ratio:.2f} |")
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
