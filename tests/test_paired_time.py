"""bench/paired_time.py: two labelled points of a YAML trained side by side as the sweep would build them, the
time and cost ratios recorded for bench/claims.py; a label the YAML lacks is refused with the labels it has."""

import importlib.util
import json
import pathlib

import pytest

_spec = importlib.util.spec_from_file_location(
    "paired_time", pathlib.Path(__file__).resolve().parents[1] / "bench" / "paired_time.py")
paired_time = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paired_time)

YAML = """
name: paired
method: pgd_at
dataset: {name: mnist, val_size: 64, train_size: 512}
model: {name: small_cnn}
threat: {eps: 0.3}
train: {epochs: 2, batch_size: 128, lr: 0.005, optimizer: adam, weight_decay: 0.0}
eval: {val_pgd_steps: 2}
pruning: {mode: none, keep: 0.5, rule: random, warmup_epochs: 0, every: 1}
search:
  pruning.mode: {choice: [none, dynamic]}
sweep:
  num_samples: 2
  enqueue:
    - {label: "full", pruning.mode: none}
    - {label: "half", pruning.mode: dynamic}
"""


def test_pair_trains_side_by_side_and_is_recorded(tmp_path, capsys):
    y = tmp_path / "r.yaml"
    y.write_text(YAML)
    out = tmp_path / "paired.json"
    out.write_text(json.dumps([{"dataset": "mnist", "baseline": "full", "candidate": "half", "time_ratio": 9.0}]))
    assert paired_time.main([str(y), "full", "half", "--out", str(out)]) == 0
    (e,) = json.loads(out.read_text())  # the earlier entry for the same pair is replaced
    assert (e["dataset"], e["baseline"], e["candidate"], len(e["rounds"])) == ("mnist", "full", "half", 1)
    b, c = e["rounds"][0]["baseline"], e["rounds"][0]["candidate"]
    assert len(b["epoch_time_s"]) == len(c["epoch_time_s"]) == 2 and b["train_time_s"] > 0 < c["train_time_s"]
    # half the data each epoch: half the cost (random selection costs nothing); the time ratio is the measured one
    assert e["cost_ratio"] == pytest.approx(0.5, abs=0.02) and e["cost_ratio"] == pytest.approx(c["cost"] / b["cost"])
    assert e["time_ratio"] == pytest.approx(c["train_time_s"] / b["train_time_s"])  # no timed assertion: a benchmark
    assert "side by side: time" in capsys.readouterr().out


def test_unknown_label_is_refused_with_the_labels_the_yaml_has(tmp_path):
    y = tmp_path / "r.yaml"
    y.write_text(YAML)
    with pytest.raises(SystemExit, match=r"no point labelled 'nope'; labels: 'full', 'half'"):
        paired_time.main([str(y), "full", "nope", "--out", str(tmp_path / "p.json")])
    assert not (tmp_path / "p.json").exists()
