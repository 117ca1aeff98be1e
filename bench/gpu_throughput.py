"""GPU throughput of the training loop: FGSM-RS, PGD-10 and FP-Better epochs of
PreActResNet-18 on CIFAR-10-shaped data (synthetic: no download is possible there), batch 512,
with the GPU path on (bf16 autocast for training, fp32 evaluation, channels_last, data resident
on the GPU, optional torch.compile), CUDA-synchronised timing.

Torch only: runs where Ray, Optuna and MLflow are not installed.

    python bench/gpu_throughput.py                     # 15 epochs per method on 50k images
    python bench/gpu_throughput.py --epochs 1 --compile
    python bench/gpu_throughput.py --n-train 128 --epochs 2 --batch 64 --width 8   # a CPU smoke run

Prints, per method: time per epoch, the time of --epochs epochs, the achieved FLOP/s
(6 × forward MACs × passes per example, from the method's own cost count) and its fraction of
the GPU's dense bf16 peak.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

# The GPU machines run this from a checkout with torch only (raysweep's torch core needs nothing else), not an install.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raysweep.data.bundle import DatasetBundle, Split  # noqa: E402
from raysweep.data.registry import load_raw  # noqa: E402
from raysweep.models.base import model_macs  # noqa: E402
from raysweep.train import TrialRun, TrialSpec  # noqa: E402

# dense bf16 tensor-core peaks (TFLOP/s), from the vendors' datasheets
PEAK_BF16_TFLOPS = {"H100 SXM": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.0, "A100": 312.0,
                    "L40S": 362.0, "A10G": 70.0, "RTX 4090": 165.0}

METHODS = {
    "fgsm_rs": {},
    "pgd_at": {"steps": 10},
    "fp_better": {"keep_prob_last": 0.5, "rate": 0.0},
}


def peak_tflops(name: str, override):
    if override:
        return override
    for k, v in PEAK_BF16_TFLOPS.items():
        if all(part in name for part in k.split()):
            return v
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="preact_resnet18")
    ap.add_argument("--width", type=int, default=None, help="model base width (default: the model's, 64)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"])
    ap.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--peak-tflops", type=float, help="override the GPU's dense bf16 peak")
    args = ap.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    peak = peak_tflops(gpu, args.peak_tflops)
    raw = load_raw("synthetic", shape=(3, 32, 32), train_size=args.n_train, test_size=256, seed=0)
    t = lambda a: torch.from_numpy(a.copy())
    data = DatasetBundle("synthetic-cifar", Split(t(raw.train_x), t(raw.train_y)), Split(t(raw.test_x[:256]), t(raw.test_y[:256])),
                         Split(t(raw.test_x), t(raw.test_y)), 10, (3, 32, 32), "crop_flip", raw.source)
    print(f"device: {gpu}; torch {torch.__version__}; {args.model}, batch {args.batch}, {args.n_train} images, "
          f"amp {args.amp}, channels_last {args.channels_last}, compile {args.compile}", flush=True)
    rows = []
    for method in args.methods.split(","):
        spec = TrialSpec.from_dict({
            "method": method, "method_params": METHODS.get(method, {}), "model": {"name": args.model, "width": args.width},
            "dataset": {"name": "synthetic", "val_size": 0}, "threat": {"eps": 8 / 255},
            "train": {"epochs": args.epochs, "batch_size": args.batch, "lr": 0.2, "optimizer": "sgd",
                      "weight_decay": 5e-4, "schedule": "cyclic", "amp": args.amp,
                      "channels_last": args.channels_last, "compile": args.compile},
            "eval": {"val_n": 1}})
        run = TrialRun(spec, data=data, device=dev)
        macs = model_macs(run.raw_model, (3, 32, 32))
        times, costs = [], []
        t0 = time.perf_counter()
        for e in range(args.epochs):
            before = run.totals["cost"]
            m = run.train_epoch(e)
            times.append(m["epoch_time_s"])
            costs.append(run.totals["cost"] - before)
        total = time.perf_counter() - t0
        steady = times[1:] or times  # the first epoch pays compilation / autotuning
        per_epoch = sum(steady) / len(steady)
        passes = sum(costs) / len(costs)  # fwd+bwd passes per example per epoch (executed fraction included)
        flops = 6.0 * macs * passes * args.n_train / per_epoch
        rows.append((method, times[0], per_epoch, sum(times), total, flops))
    print("\n| method | first epoch (s) | steady epoch (s) | train time, all epochs (s) | wall (s) | achieved TFLOP/s | % of bf16 peak |")
    print("|---|---|---|---|---|---|---|")
    for method, first, per_epoch, train_total, wall, flops in rows:
        pct = f"{100 * flops / 1e12 / peak:.1f}" if peak else "n/a"
        print(f"| {method} | {first:.2f} | {per_epoch:.2f} | {train_total:.1f} | {wall:.1f} | {flops / 1e12:.2f} | {pct} |")


if __name__ == "__main__":
    main()
