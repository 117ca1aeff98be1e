"""Bad YAML gets one clear line naming the file, the key and what is allowed; exit 2; nothing written."""

import os

import pytest

from raysweep.config import load_config, parse_config
from raysweep.errors import ConfigError

from conftest import REPO, TINY_YAML, run_cli

BASE = {
    "name": "t", "method": "fgsm_rs", "dataset": {"name": "synthetic", "val_size": 64},
    "model": {"name": "small_cnn"}, "threat": {"eps": 0.1},
}


def err(raw, file="x.yaml"):
    with pytest.raises(ConfigError) as e:
        parse_config(raw, file)
    return str(e.value)


def with_(**kw):
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for k, v in kw.items():
        d[k] = v
    return d


def test_base_is_valid():
    cfg = parse_config(dict(BASE), "x.yaml")
    assert cfg.methods == ["fgsm_rs"]
    assert cfg.trial_spec({}).threat.eps == 0.1


def test_unknown_top_level_key_suggests():
    msg = err(with_(trian={"epochs": 1}))
    assert msg.startswith("x.yaml: trian: unknown key")
    assert "did you mean 'train'" in msg


def test_unknown_section_key_names_allowed_values():
    msg = err(with_(train={"epochs": 1, "learning_rate": 0.1}))
    assert "train.learning_rate" in msg and "allowed:" in msg and "lr" in msg


def test_negative_eps():
    msg = err(with_(threat={"eps": -0.1}))
    assert "threat.eps" in msg and "-0.1" in msg and "(0.0, 1.0]" in msg


def test_pruning_keep_at_least_one():
    msg = err(with_(pruning={"keep": 1.0}))
    assert "pruning.keep" in msg and "(0.0, 1.0)" in msg


def test_missing_dataset_directory(tmp_path):
    """Parsing reads no filesystem; the preflight, which runs before anything starts, names the missing root."""
    from raysweep.preflight import check_paths

    missing = tmp_path / "nope"
    cfg = parse_config(with_(dataset={"name": "cifar10", "root": str(missing)}), "x.yaml")
    with pytest.raises(ConfigError) as e:
        check_paths(cfg)
    msg = str(e.value)
    assert "dataset.root" in msg and str(missing) in msg and "does not exist" in msg


def test_unknown_method_and_model():
    assert "did you mean 'pgd_at'" in err(with_(method="pgd_att"))
    assert "model.name" in err(with_(model={"name": "vgg99"}))


def test_wrong_type():
    assert "train.epochs" in err(with_(train={"epochs": "many"}))
    assert "train.epochs" in err(with_(train={"epochs": 2.5}))


def test_search_space_errors():
    assert "search.lr.float" in err(with_(search={"lr": {"float": [0.1, 0.01]}}))
    assert "log scale needs low > 0" in err(with_(search={"lr": {"float": [0.0, 0.1], "log": True}}))
    assert "did you mean 'alpha'" in err(with_(search={"alpah": {"float": [0.1, 0.2]}}))
    assert "search.epochs" in err(with_(search={"epochs": {"int": [0, 3]}}))
    assert "exactly one of" in err(with_(search={"lr": {"float": [0.1, 0.2], "int": [1, 2]}}))
    assert "integer" in err(with_(search={"epochs": {"float": [1, 3]}}))


def test_method_param_bounds_in_params_and_search():
    assert "params.alpha" in err(with_(params={"alpha": -1}))
    msg = err(with_(method={"choice": ["fgsm_rs", "pgd_at"]}, search={"pgd_at.steps": {"int": [0, 5]}}))
    assert "search.pgd_at.steps" in msg


def test_objective_metric_unknown():
    msg = err(with_(objectives=[{"metric": "val_robust", "mode": "max"}]))
    assert "objectives[0].metric" in msg and "val_robust_acc" in msg


def test_sweep_section_pydantic_errors():
    assert "sweep.sampler" in err(with_(sweep={"sampler": "grid"}))
    assert "sweep.num_sampels" in err(with_(sweep={"num_sampels": 3}))
    assert "resources.num_workers" in err(with_(resources={"num_workers": 0}))


def test_cross_method_conditional_space():
    cfg = parse_config(with_(method={"choice": ["fgsm_rs", "pgd_at"]},
                             search={"pgd_at.steps": {"int": [1, 3]}, "alpha": {"float": [0.01, 0.1]}}), "x.yaml")
    by_key = {s.key: s for s in cfg.search}
    assert by_key["pgd_at.steps"].methods == ["pgd_at"]
    assert sorted(by_key["alpha"].methods) == ["fgsm_rs", "pgd_at"]
    spec = cfg.trial_spec({"method": "pgd_at", "pgd_at.steps": 2, "alpha": 0.05})
    assert spec.method_params == {"steps": 2, "alpha": 0.05}


def test_set_overrides(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(TINY_YAML.format(name="t", n=3))
    cfg = load_config(p, ["sweep.num_samples=5", "train.epochs=1", "threat.eps=0.2"])
    assert cfg.sweep.num_samples == 5 and cfg.base["train"]["epochs"] == 1 and cfg.base["threat"]["eps"] == 0.2


def test_yaml_is_loaded_safely(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "not valid YAML" in str(e.value)


def test_cli_bad_yaml_exits_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "conf" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text(TINY_YAML.format(name="bad", n=3).replace("eps: 0.1", "eps: -0.1"))
    work = tmp_path / "work"
    work.mkdir()
    r = run_cli(["sweep", str(bad)], cwd=work, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "threat.eps" in lines[0]
    assert os.listdir(work) == []  # no mlflow.db, no raysweep_runs, nothing


def test_cli_missing_file_exits_2(tmp_path):
    r = run_cli(["validate", str(tmp_path / "none.yaml")], cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "file not found" in r.stderr


@pytest.mark.parametrize("path", sorted((REPO / "search_spaces").rglob("*.yaml")), ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_search_space_validates(path, tmp_path):
    raw_text = path.read_text()
    import yaml

    raw = yaml.safe_load(raw_text)
    root = (raw.get("dataset") or {}).get("root")
    if root:  # CIFAR variants need the user's data directory: point it at an existing one
        raw["dataset"]["root"] = str(tmp_path)
    cfg = parse_config(raw, str(path))
    for m in cfg.methods:
        cfg.trial_spec({"method": m})


def _one_line_error(path):
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    return msg


def test_a_key_given_twice_names_the_key_and_both_lines(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text(TINY_YAML.format(name="t", n=2).replace("eval:", "train: {epochs: 9}\neval:"))
    msg = _one_line_error(p)
    lines = TINY_YAML.format(name="t", n=2).splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("train:")) + 1  # 1-based, as editors count
    assert f": train: given twice in one mapping (lines {first} and {first + 1})" in msg, msg


def test_a_nested_key_given_twice(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text(TINY_YAML.format(name="t", n=2).replace("eps: 0.1}", "eps: 0.1, eps: 0.2}"))
    assert ": eps: given twice" in _one_line_error(p)


def test_binary_or_non_utf8_file_is_one_line_error(tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert "not a UTF-8 text file (byte 0xe9" in _one_line_error(p)
    p.write_bytes(b"name: t\x00\x01\x02\n")
    assert "not a text file" in _one_line_error(p)
    r = run_cli(["validate", str(p)], cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_set_of_a_searched_value_wins_and_says_so(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(TINY_YAML.format(name="t", n=2).replace("search:\n", "search:\n  epochs: {choice: [1, 2]}\n")
                 .replace("seed: 0}", "seed: 0, enqueue: [{epochs: 2, lr: 0.005}]}"))
    cfg = load_config(p, ["train.epochs=1", "params.pgd_at.steps=2"])
    assert [s.key for s in cfg.search] == ["lr"]
    assert cfg.base["train"]["epochs"] == 1 and cfg.sweep.enqueue == [{"lr": 0.005}]
    assert any("search.epochs removed and from 1 sweep.enqueue point" in n for n in cfg.notes), cfg.notes
    assert any("search.pgd_at.steps removed" in n for n in cfg.notes), cfg.notes
    # setting the search key too keeps it searched; null removes it
    kept = load_config(p, ["train.epochs=1", "search.epochs={choice: [2, 3]}"])
    assert "epochs" in [s.key for s in kept.search] and not kept.notes
    assert "epochs" not in [s.key for s in load_config(p, ["search.epochs=null"]).search]
    r = run_cli(["validate", "--no-data", str(p), "--set", "train.epochs=1"], cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and "search.epochs removed" in r.stdout, r.stdout + r.stderr


def test_methods_lists_the_pruning_policies(tmp_path):
    r = run_cli(["methods", "-v"], cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "composes with every method" in out
    assert "pruning.mode: static" in out and "pruning.mode: dynamic  [reconstruction]" in out
    assert "keep = 0.5  (in (0.0, 1.0))" in out and "warmup_epochs = 5" in out


def test_only_runs_the_labelled_points_and_names_the_labels_when_one_is_missing(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(TINY_YAML.format(name="t", n=5).replace("search:\n", "search:\n  epochs: {choice: [1, 2]}\n")
                 .replace("seed: 0}", "seed: 0, enqueue: [{label: a, epochs: 1}, {label: b, epochs: 2}, {epochs: 2}]}"))
    cfg = load_config(p, [], ["b"])
    assert cfg.sweep.enqueue == [{"label": "b", "epochs": 2}] and cfg.sweep.num_samples == 1
    assert cfg.raw["sweep"]["enqueue"] == cfg.sweep.enqueue  # what the sweep saves for `raysweep resume`
    assert any("1 of the 3 enqueued points (b)" in n for n in cfg.notes), cfg.notes
    work = tmp_path / "work"
    work.mkdir()
    r = run_cli(["sweep", str(p), "--only", "c"], cwd=work, timeout=120)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert str(p) in lines[0] and "sweep.enqueue" in lines[0] and "'c'" in lines[0] and "'a', 'b'" in lines[0]
    assert os.listdir(work) == []


def test_a_closed_output_pipe_is_not_a_traceback(tmp_path):
    """`raysweep validate FILE | head -1`: the reader is gone before the command is done printing."""
    import subprocess
    import sys

    p = tmp_path / "t.yaml"
    p.write_text(TINY_YAML.format(name="t", n=2))
    r, w = os.pipe()
    os.close(r)  # every write now fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "raysweep.cli", "validate", "--no-data", str(p)], stdout=w,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=120)
    finally:
        os.close(w)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


def test_switches_take_on_and_off_as_users_write_them_unquoted(tmp_path):
    """YAML reads an unquoted on/off as a boolean: a switch whose values are words takes it back."""
    p = tmp_path / "s.yaml"
    p.write_text(TINY_YAML.format(name="s", n=1).replace("weight_decay: 0.0}", "weight_decay: 0.0, amp: off, channels_last: on}"))
    cfg = load_config(p)
    t = cfg.trial_spec({"method": "fgsm_rs"}).train
    assert (t.amp, t.channels_last) == ("off", "on")
    cfg = load_config(p, ["train.channels_last=off", "train.amp=bf16"])
    t = cfg.trial_spec({"method": "fgsm_rs"}).train
    assert (t.amp, t.channels_last) == ("bf16", "off")
    cfg = load_config(p, ["search.channels_last={choice: [on, off]}"])
    assert cfg.search[-1].dist.choices == ["on", "off"]
    msg = err(with_(train={"amp": True}))  # `amp: on`: not one of its values
    assert msg == "x.yaml: train.amp: 'on' is not allowed; one of auto, bf16, off"


def test_no_validation_split_with_objectives_on_it_is_an_error_before_anything_starts(tmp_path):
    msg = err(with_(dataset={"name": "synthetic", "val_size": 0}))
    assert msg == ("x.yaml: dataset.val_size: 0 leaves no validation split, but val_robust_acc is measured on it; "
                   "allowed: 1 or more")
    p = tmp_path / "v.yaml"
    p.write_text(TINY_YAML.format(name="v", n=1).replace("val_size: 128", "val_size: 0"))
    r = run_cli(["sweep", str(p)], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "dataset.val_size: 0 leaves no validation split" in r.stderr
    assert not (tmp_path / "raysweep_runs").exists() and not (tmp_path / "mlflow.db").exists()
    cheap = with_(dataset={"name": "synthetic", "val_size": 0},
                  objectives=[{"metric": "train_time_s", "mode": "min"}, {"metric": "cost", "mode": "min"}])
    assert parse_config(cheap, "x.yaml").base["dataset"]["val_size"] == 0  # nothing measured on it: allowed


def test_autoattack_without_torchattacks_is_one_line_naming_the_install_command(tmp_path):
    import subprocess
    import sys

    p = tmp_path / "a.yaml"
    p.write_text(TINY_YAML.format(name="a", n=1).replace("attacks: [clean, pgd20]", "attacks: [clean, autoattack]"))
    # the package made unimportable in that process only (None in sys.modules: ImportError on import)
    code = "import sys; sys.modules['torchattacks'] = None; from raysweep.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, "sweep", str(p)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stderr.strip() == (f"raysweep: error: {p}: final_eval.attacks: autoattack need torchattacks, which is not "
                                "installed: pip install --no-deps torchattacks==3.5.1"), r.stderr
    assert not (tmp_path / "raysweep_runs").exists()
