"""Secure defaults: servers on localhost, no secrets as params, data-only checkpoints."""

import pytest
import torch
from mlflow.tracking import MlflowClient

from raysweep.cli import build_parser
from raysweep.tracking.store import SweepTracker


def test_ui_binds_localhost_by_default():
    args = build_parser().parse_args(["ui"])
    assert args.host == "127.0.0.1"


def test_no_secret_is_logged_as_a_param(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    t = SweepTracker(uri, "sec", artifact_root=tmp_path / "a")
    parent = t.start_parent("p", {})
    child = t.start_child(parent, "c", {"train.lr": 0.1, "storage.aws_secret_access_key": "x", "mlflow.token": "y",
                                        "db.password": "z"}, {})
    params = MlflowClient(uri).get_run(child).data.params
    assert params == {"train.lr": "0.1"}


def test_checkpoints_load_as_data_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"model": {}, "x": Evil()}, tmp_path / "state.pt")
    from raysweep.train.ray_worker import load_state

    with pytest.raises(Exception):
        load_state(str(tmp_path))  # weights_only=True refuses to build arbitrary objects
