"""What only the data or the model can refuse is refused on the driver, once, before the first
trial: one line naming the file and key, exit 2, nothing written (no Ray, no MLflow store)."""

import os

import pytest

from raysweep.config import load_config
from raysweep.errors import ConfigError
from raysweep.preflight import check_against_data

from conftest import TINY_YAML, run_cli


def _cfg(tmp_path, *overrides, extra=""):
    p = tmp_path / "t.yaml"
    p.write_text(TINY_YAML.format(name="t", n=2) + extra)
    return load_config(p, list(overrides))


def _refused(cfg):
    with pytest.raises(ConfigError) as e:
        check_against_data(cfg)
    return str(e.value)


def test_a_valid_config_passes(tmp_path):
    check_against_data(_cfg(tmp_path))


def test_validation_split_larger_than_the_dataset(tmp_path):
    # synthetic has 2048 training examples
    msg = _refused(_cfg(tmp_path, "dataset.val_size=100000"))
    assert msg.startswith(f"{tmp_path / 't.yaml'}: dataset.val_size: 100000 must be in [0, 2047]"), msg


def test_a_searched_split_size_is_checked_at_its_ends(tmp_path):
    msg = _refused(_cfg(tmp_path, "search.dataset.val_size={int: [64, 4096]}"))
    assert ": search.dataset.val_size: " in msg and "2047" in msg


def test_model_that_cannot_take_the_input_shape(tmp_path):
    msg = _refused(_cfg(tmp_path, "imports=[fixed_input_models]", "model.name=linear_cifar_only"))
    assert ": model: linear_cifar_only cannot take this dataset's (1, 28, 28) inputs" in msg
    assert "\n" not in msg


def test_a_method_that_cannot_train_the_model(tmp_path):
    """FP-Better samples skippable blocks: on small_cnn its first trial would fail; pre-flight says so instead."""
    msg = _refused(_cfg(tmp_path, "method={choice: [fgsm_rs, fp_better]}", "search.pgd_at.steps=null"))
    assert ": model: SmallCNN cannot be trained by fp_better: fp_better needs a model with skippable residual" in msg
    check_against_data(_cfg(tmp_path, "method={choice: [fgsm_rs, fp_better]}", "search.pgd_at.steps=null",
                            "model.name=resnet_tiny"))


def test_malformed_files_under_root(tmp_path):
    root = tmp_path / "mnist"
    root.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (root / stem).write_bytes(b"not an idx file at all")
    msg = _refused(_cfg(tmp_path, "dataset.name=mnist", f"dataset.root={root}"))
    assert ": dataset.root: " in msg and "IDX" in msg, msg


def test_cli_sweep_refuses_before_anything_is_written(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    bad = conf / "big_val.yaml"
    bad.write_text(TINY_YAML.format(name="bigval", n=2).replace("val_size: 128", "val_size: 100000"))
    work = tmp_path / "work"
    work.mkdir()
    r = run_cli(["sweep", str(bad)], cwd=work, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "dataset.val_size" in lines[0], r.stderr
    assert os.listdir(work) == []  # no Ray session, no mlflow.db, no raysweep_runs
    v = run_cli(["validate", str(bad)], cwd=work, timeout=120)
    assert v.returncode == 2 and "dataset.val_size" in v.stderr
    assert run_cli(["validate", "--no-data", str(bad)], cwd=work, timeout=120).returncode == 0


def test_a_bad_tune_chunk_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    good = tmp_path / "tiny.yaml"
    good.write_text(TINY_YAML.format(name="chunk", n=2))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("RAYSWEEP_TUNE_CHUNK", "lots")
    r = run_cli(["sweep", str(good)], cwd=work, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "RAYSWEEP_TUNE_CHUNK" in lines[0] and "'lots'" in lines[0] and ">= 1" in lines[0], r.stderr
    assert os.listdir(work) == []


def test_tune_chunks_cover_the_trials_to_run(monkeypatch):
    from raysweep.tune.chunks import DEFAULT, chunk_size, plan_chunks

    assert plan_chunks(5, 2) == [2, 2, 1] and plan_chunks(4000, 2000) == [2000, 2000] and plan_chunks(0, 7) == []
    monkeypatch.delenv("RAYSWEEP_TUNE_CHUNK", raising=False)
    assert chunk_size() == DEFAULT
    monkeypatch.setenv("RAYSWEEP_TUNE_CHUNK", "0")
    with pytest.raises(Exception, match="RAYSWEEP_TUNE_CHUNK"):
        chunk_size()
