"""The package's floors: the torch core (data, models, attacks, methods, the training loop and its stages,
evaluation) runs where only torch is installed (the GPU machines have no Ray, Optuna or MLflow), and a method
computes a loss without importing the training loop."""

import ast
import subprocess
import sys
from pathlib import Path

import raysweep

CORE = ["raysweep.data", "raysweep.models", "raysweep.attacks", "raysweep.methods", "raysweep.train.loop",
        "raysweep.train.teacher", "raysweep.train.pruning", "raysweep.train.passes", "raysweep.evaluation.suite"]


def test_torch_core_imports_neither_ray_optuna_nor_mlflow():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE) +
            "bad = sorted({n.split('.')[0] for n in sys.modules} & {'ray', 'optuna', 'mlflow'})\n"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_methods_do_not_import_the_training_loop():
    """A method computes a loss; training (a teacher's included) belongs to raysweep.train."""
    for f in (Path(raysweep.__file__).parent / "methods").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                assert not mod.startswith("..train") and "raysweep.train" not in mod, f"{f.name} imports {mod}"


def test_private_ray_names_only_in_the_compatibility_module():
    """Ray's internals (``_internal``/``_private`` modules, underscore names of its modules, methods of its
    classes that start with an underscore) are used in ``tune/ray_compat.py`` and nowhere else in the package."""
    import re

    pattern = re.compile(r"ray(\.\w+)*\.(_internal|_private)\b|\"ray(\.\w+)*\.(_internal|_private)|"
                         r"_create_default_callbacks|get_session|_setup_torch_process_group|"
                         r"_set_torch_distributed_env_vars|_shutdown_torch|TorchConfigContextManager")
    found = []
    for f in sorted(Path(raysweep.__file__).parent.rglob("*.py")):
        if f.name == "ray_compat.py":
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{f.relative_to(Path(raysweep.__file__).parent)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)
