"""The version gate in front of the private Ray names (``raysweep/tune/ray_compat.py``): the installed
release passes it, any other release or a missing name falls back to Ray's documented path by itself.
The fallback's sweep runs in tests/test_lean_train.py."""

import pytest
import ray

from raysweep.tune import ray_compat


def test_installed_release_uses_the_lean_launch():
    assert ray_compat.unsupported_reason() is None, ray_compat.unsupported_reason()
    assert ray_compat.lean_trainer_class().__mro__[1].__name__ == "DataParallelTrainer"


@pytest.mark.parametrize("version", ["2.59.0", "2.61.0", "3.0.0", "nightly"])
def test_other_releases_fall_back(version):
    reason = ray_compat.unsupported_reason(version)
    assert reason is not None and version in reason


def test_a_missing_name_falls_back(monkeypatch):
    monkeypatch.setattr(ray_compat, "_DRIVER_NAMES", ray_compat._DRIVER_NAMES + (("ray.train", "NoSuchName"),))
    assert ray_compat.unsupported_reason(ray.__version__) == "ray.train.NoSuchName is gone"


def test_the_gate_says_why_once(monkeypatch, capsys):
    monkeypatch.setattr(ray_compat, "TESTED_RAY", ((1, 0),))
    ray_compat.lean_supported.cache_clear()
    try:
        assert ray_compat.lean_enabled() is False and ray_compat.lean_enabled() is False
        err = capsys.readouterr().err
        assert err.count("raysweep: Ray Train trials use Ray's TorchTrainer: Ray") == 1, err
    finally:
        ray_compat.lean_supported.cache_clear()
    monkeypatch.setenv("RAYSWEEP_LEAN_TRAIN", "0")
    assert ray_compat.lean_enabled() is False
