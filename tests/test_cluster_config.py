"""cluster.yaml is a valid Ray cluster-launcher config, checked offline by Ray's own validation."""

import copy

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from conftest import REPO


def _load():
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_cluster_yaml_passes_ray_validation():
    cfg = _load()
    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws"
    types = prepared["available_node_types"]
    assert prepared["head_node_type"] == "head"
    assert types["gpu_worker"]["min_workers"] == 0 and types["gpu_worker"]["max_workers"] >= 1
    assert types["gpu_worker"]["node_config"]["InstanceType"].startswith(("g", "p"))


def test_cluster_yaml_installs_raysweep_and_runs_mlflow_on_localhost():
    cfg = _load()
    setup = "\n".join(cfg["setup_commands"])
    assert "pip install -q -e \"/home/ubuntu/raysweep[cluster]\"" in setup  # ray[default]: dashboard + job API
    assert "RAYSWEEP_STORAGE_PATH" in setup
    head = "\n".join(cfg["head_setup_commands"])
    assert "mlflow server" in head and "--host 127.0.0.1" in head
    assert "/home/ubuntu/raysweep" in cfg["file_mounts"]
    assert "--dashboard-host=127.0.0.1" in "\n".join(cfg["head_start_ray_commands"])


def test_a_broken_cluster_yaml_is_rejected():
    cfg = _load()
    cfg["available_node_types"]["gpu_worker"]["min_workrs"] = 1
    try:
        validate_config(prepare_config(cfg))
    except Exception as e:  # jsonschema.ValidationError
        assert "min_workrs" in str(e)
    else:
        raise AssertionError("typo in cluster.yaml was not caught")
