import numpy as np

from raysweep.tracking.pareto import front_rows, pareto_mask, plot_front


def test_min_max_front():
    pts = np.array([[1.0, 0.5], [2.0, 0.7], [2.5, 0.6], [3.0, 0.9], [0.5, 0.1], [3.0, 0.8]])
    mask = pareto_mask(pts, ["min", "max"])
    assert mask.tolist() == [True, True, False, True, True, False]


def test_nan_never_on_front_and_duplicates_kept():
    pts = np.array([[1.0, np.nan], [1.0, 0.5], [1.0, 0.5], [2.0, 0.4]])
    assert pareto_mask(pts, ["min", "max"]).tolist() == [False, True, True, False]


def test_three_objectives_and_empty():
    pts = np.array([[1, 1, 1], [0, 2, 2], [2, 0, 2], [2, 2, 2]], dtype=float)
    assert pareto_mask(pts, ["min", "min", "min"]).tolist() == [True, True, True, False]
    assert pareto_mask(np.zeros((0, 2)), ["min", "max"]).tolist() == []


def test_brute_force_agrees():
    rng = np.random.default_rng(0)
    pts = rng.random((60, 2))
    mask = pareto_mask(pts, ["min", "max"])
    for i, p in enumerate(pts):
        dominated = any((q[0] <= p[0] and q[1] >= p[1]) and (q[0] < p[0] or q[1] > p[1]) for q in pts)
        assert mask[i] == (not dominated)


def test_plot_and_rows(tmp_path):
    rows = [{"trial": i, "method": "a" if i % 2 else "b", "train_time_s": t, "val_robust_acc": a}
            for i, (t, a) in enumerate([(1, 0.2), (2, 0.5), (3, 0.4), (4, 0.8)])]
    out = front_rows(rows, [{"metric": "train_time_s", "mode": "min"}, {"metric": "val_robust_acc", "mode": "max"}])
    assert [r["trial"] for r in out if r["pareto_optimal"]] == [0, 1, 3]
    path = plot_front(out, "train_time_s", "val_robust_acc", tmp_path / "p.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_parent_run_description_puts_the_front_first_and_fits_a_tag(tmp_path):
    from conftest import TINY_YAML

    from raysweep.config import load_config
    from raysweep.tune.summary import NOTE_LIMIT, front_note

    p = tmp_path / "n.yaml"
    p.write_text(TINY_YAML.format(name="note", n=2))
    cfg = load_config(p)
    objectives = [{"metric": "train_time_s", "mode": "min"}, {"metric": "val_robust_acc", "mode": "max"}]
    front = [{"trial": i, "label": f"configuration {i}", "method": "pgd_at", "train_time_s": 10.0 + i,
              "val_robust_acc": 0.5, "val_clean_acc": 0.9, "cost": 3.0} for i in range(400)]
    note = front_note(cfg, front, front, objectives)
    lines = note.splitlines()
    assert lines[2].startswith("| trial | label | method | train_time_s | val_robust_acc")  # the UI's preview shows it
    assert len(note) <= NOTE_LIMIT and "more front points in pareto.csv" in note
    assert note.rstrip().endswith("on front members.")  # what was optimised survives the cut
    assert "| 0 | configuration 0 |" in note
