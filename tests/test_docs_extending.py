"""docs/extending.md's instructions, run as written: the example plugin (examples/my_plugin.py) is loaded by
its YAML's ``imports:`` and validated with the real CLI, and its method and model pass the contract tests
every registered method and model gets, by importing the plugin into a pytest run with ``-p``.

Everything runs in subprocesses: importing the plugin here would register its method, model and dataset
in this process, and the other test modules' lists of registered names would then include them."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CONTRACT = REPO / "tests" / "test_method_contract.py"
DOC = REPO / "docs" / "extending.md"


def _env(with_plugin: bool = True):
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != EXAMPLES]
    env["PYTHONPATH"] = os.pathsep.join(([str(EXAMPLES)] if with_plugin else []) + paths)
    return env


def _raysweep():
    """The console script the docs call (.venv/bin/raysweep), else the same entry point as a module."""
    script = Path(sys.executable).with_name("raysweep")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "raysweep.cli"]


def test_validate_example_yaml_loads_the_plugin_by_imports():
    r = subprocess.run(_raysweep() + ["validate", "examples/my_plugin.yaml"], cwd=REPO, env=_env(),
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    assert "examples/my_plugin.yaml: OK" in out
    assert "methods: fgsm_fixed, fgsm_rs" in out
    # the plugin's dataset and model were loaded and built (validate checks them against each other)
    assert "name: stripes" in out and "name: tiny_mlp" in out


def test_validate_without_the_plugin_on_the_path_is_a_one_line_error():
    r = subprocess.run(_raysweep() + ["validate", "examples/my_plugin.yaml"], cwd=REPO, env=_env(with_plugin=False),
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "imports: cannot import 'my_plugin'" in r.stderr
    assert "Traceback" not in r.stderr


def test_example_method_and_model_pass_the_contract_tests():
    """One training step of ``fgsm_fixed`` through every check of tests/test_method_contract.py (loss, ball,
    gradients, determinism, cost against the counted passes, mode, Params round trip), and ``tiny_mlp``
    through tests/test_models.py's checks over every registered model."""
    contract = [n.name for n in ast.parse(CONTRACT.read_text()).body
                if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "my_plugin", "-p", "no:cacheprovider", "-v",
                        "tests/test_method_contract.py", "tests/test_models.py", "-k", "fgsm_fixed or tiny_mlp"],
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    for name in contract:
        assert f"test_method_contract.py::{name}[fgsm_fixed] PASSED" in r.stdout, (name, r.stdout[-3000:])
    assert "test_models.py::test_output_shape_no_nans_and_every_parameter_gets_a_gradient[tiny_mlp] PASSED" in r.stdout


def _blocks(lang):
    return re.findall(rf"^```{lang}\n(.*?)^```$", DOC.read_text(), re.M | re.S)


def test_code_shown_is_the_example_files_code():
    """Every Python block of the page is a verbatim piece of examples/my_plugin.py, and its YAML is the example's."""
    source = (EXAMPLES / "my_plugin.py").read_text()
    python = _blocks("python")
    assert len(python) >= 4
    for block in python:
        assert block in source, block[:200]
    shipped = yaml.safe_load((EXAMPLES / "my_plugin.yaml").read_text())
    for block in _blocks("yaml"):
        shown = yaml.safe_load(block)
        assert shown == {k: shipped[k] for k in shown}, shown


def test_test_set_evaluation_imports_the_plugins_itself(tmp_path):
    """The final evaluation and `raysweep evaluate` run in processes that never loaded the YAML: they import the
    trial spec's ``imports`` before building a plugin's model and dataset."""
    spec = {"method": "fgsm_fixed", "imports": ["my_plugin"], "dataset": {"name": "stripes", "val_size": 500},
            "model": {"name": "tiny_mlp", "width": 32}, "threat": {"eps": 0.12}, "device": "cpu"}
    weights = tmp_path / "w.pt"
    make = (f"import torch, my_plugin; from raysweep.data import load_dataset; from raysweep.models import build_model\n"
            f"d = load_dataset('stripes', val_size=500, train_size=1)\n"
            f"torch.save(build_model('tiny_mlp', d.num_classes, d.input_shape, width=32).state_dict(), {str(weights)!r})")
    r = subprocess.run([sys.executable, "-c", make], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    use = (f"import torch; from raysweep.evaluation import evaluate_state\n"
           f"r = evaluate_state({spec!r}, torch.load({str(weights)!r}), ['clean', 'pgd20'], n=50, device='cpu')\n"
           f"print(sorted(r))")
    r = subprocess.run([sys.executable, "-c", use], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "test_pgd20_acc" in r.stdout
