"""Where a sweep writes: the working directory, unless it is the temporary copy of a Ray job."""

from raysweep.workdir import is_ephemeral, output_dir


def test_a_ray_job_copy_is_ephemeral(tmp_path):
    job = tmp_path / "session_2026-12-01_10-00-00_1_1" / "runtime_resources" / "working_dir_files" / "_ray_pkg_ab12"
    job.mkdir(parents=True)
    assert is_ephemeral(job) and is_ephemeral(job / "sub")
    assert not is_ephemeral(tmp_path) and not is_ephemeral(tmp_path / "runtime_resources")


def test_outputs_go_to_raysweep_home_from_a_job_copy(tmp_path, monkeypatch):
    job = tmp_path / "runtime_resources" / "working_dir_files" / "_ray_pkg_ab12"
    job.mkdir(parents=True)
    monkeypatch.setenv("RAYSWEEP_HOME", str(tmp_path / "home"))
    where, why = output_dir(job)
    assert where == tmp_path / "home" and where.is_dir()
    assert "temporary copy" in why and str(tmp_path / "home") in why
    assert output_dir(tmp_path) == (tmp_path, None)
