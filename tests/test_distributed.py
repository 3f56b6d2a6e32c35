"""Data-parallel training: N processes over MPI equal one process (float64)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import purenet as pn
from purenet.distributed import THREAD_VARIABLES, thread_settings
from purenet.ops.normalization import batch_norm, shared_statistics

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _mpi_ready():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return shutil.which("mpiexec") is not None


needs_mpi = pytest.mark.skipif(not _mpi_ready(), reason="needs mpi4py and mpiexec "
                                                        '(pip install "purenet[mpi]")')


def _mpiexec(n, *args, timeout=120, threads=True):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get(
        "PYTHONPATH")])), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    if not threads:                     # as a user would start it: no thread counts set
        env = {k: v for k, v in env.items() if k not in THREAD_VARIABLES}
    return subprocess.run(["mpiexec", "-n", str(n), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@needs_mpi
def test_two_ranks_train_like_one_process():
    done = _mpiexec(2, sys.executable, os.path.join(HERE, "mpi", "equal_training.py"))
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line}
    for name in ("mlp", "cnn", "lstm"):
        params, loss = map(float, rows[name])
        assert params <= 1e-6 and loss <= 1e-6, (name, params, loss)
    assert float(rows["mlp-validation"][0]) <= 1e-12, rows["mlp-validation"]
    assert rows["cnn-per-rank-statistics"] == ["True"]


@needs_mpi
def test_ctrl_c_in_one_rank_stops_every_rank_after_the_same_step():
    # before: rank 1 stopped alone and rank 0 waited in its next Allreduce for ever
    done = _mpiexec(2, sys.executable, os.path.join(HERE, "mpi", "interrupt_one_rank.py"),
                    timeout=60)
    assert done.returncode == 0, done.stderr
    rows = sorted(line.split() for line in done.stdout.splitlines() if line.startswith("rank"))
    assert [r[:2] for r in rows] == [["rank", "0"], ["rank", "1"]]
    assert all(r[2] == "True" for r in rows)               # both interrupted
    assert rows[0][3:] == rows[1][3:]                        # same epochs kept, same params
    assert rows[0][3] == "2"


@needs_mpi
def test_an_error_on_one_rank_stops_every_rank():
    script = ("from purenet.distributed import abort_on_error\n"
              "from mpi4py import MPI\n"
              "with abort_on_error():\n"
              "    if MPI.COMM_WORLD.Get_rank() == 1:\n"
              "        raise ValueError('bad shard')\n"
              "    MPI.COMM_WORLD.Barrier()\n")
    done = _mpiexec(2, sys.executable, "-c", script, timeout=60)
    assert done.returncode != 0
    assert "rank 1: ValueError: bad shard" in done.stderr


def test_shared_statistics_of_one_process_are_its_own():
    rng = np.random.default_rng(0)
    x, gamma, beta = rng.standard_normal((6, 3, 4, 4)), rng.random(3) + 0.5, rng.random(3)
    g = rng.standard_normal(x.shape)

    def loss(args, shared):
        if shared:
            with shared_statistics(lambda a: a, 6, 6):
                y, _, _ = batch_norm(*args)
        else:
            y, _, _ = batch_norm(*args)
        return pn.ops.sum(y * g)

    plain = pn.grad(lambda a: loss(a, False))((x, gamma, beta))
    shared = pn.grad(lambda a: loss(a, True))((x, gamma, beta))
    for a, b in zip(plain, shared):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_workers_without_mpi_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    from purenet import cli
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    status = cli.main(["train", "boston", "--workers", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and 'pip install "purenet[mpi]"' in err


def test_each_process_gets_its_share_of_the_cores_unless_the_user_chose():
    assert thread_settings(2, {}, available=2) == {name: "1" for name in THREAD_VARIABLES}
    assert thread_settings(2, {}, available=8)["OPENBLAS_NUM_THREADS"] == "4"
    assert thread_settings(4, {}, available=2)["OMP_NUM_THREADS"] == "1"
    assert thread_settings(2, {"OMP_NUM_THREADS": "3"}, available=8) == {}


def test_workers_start_mpiexec_with_a_thread_count_per_process(monkeypatch, tmp_path):
    from purenet import cli
    calls = []
    monkeypatch.setattr(cli.shutil, "which", lambda name: "/bin/" + name)
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, env: calls.append((cmd, env)) or 0)
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    argv = ["train", "boston", "--workers", "2", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert cli.main(argv) == 0
    (cmd, env), (_, env_user) = calls
    assert cmd[:3] == ["/bin/mpiexec", "-n", "2"] and cmd[-len(argv):] == argv
    share = thread_settings(2, {})["OMP_NUM_THREADS"]         # this machine's cores / 2
    assert all(env[name] == share for name in THREAD_VARIABLES)
    assert env_user["OPENBLAS_NUM_THREADS"] == "2" and "OMP_NUM_THREADS" not in env_user


@needs_mpi
def test_processes_started_without_thread_counts_are_told_how_to_set_them():
    script = ("from purenet.cli import _note_threads\n"
              "from purenet.distributed import DataParallel\n"
              "_note_threads(DataParallel())\n")
    plain = _mpiexec(2, sys.executable, "-c", script, timeout=60, threads=False)
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.count("note:") == 1 and "OPENBLAS_NUM_THREADS=" in plain.stderr
    set_up = _mpiexec(2, sys.executable, "-c", script, timeout=60)
    assert set_up.returncode == 0 and "note:" not in set_up.stderr


@needs_mpi
def test_a_recipe_under_mpiexec_writes_once(tmp_path):
    out = tmp_path / "out"
    done = _mpiexec(2, sys.executable, "-m", "purenet", "train", "boston", "--epochs", "1",
                    "--out", str(out), "--no-progress", timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("wrote ") == 1
    assert (out / "metrics.json").is_file()


@needs_mpi
def test_a_two_rank_checkpoint_resumes_in_one_process(tmp_path):
    done = _mpiexec(2, sys.executable, os.path.join(HERE, "mpi", "checkpoint_two_ranks.py"),
                    str(tmp_path))
    assert done.returncode == 0, done.stderr
    sys.path.insert(0, os.path.join(HERE, "mpi"))
    try:
        from equal_training import mlp, relative_difference
    finally:
        sys.path.pop(0)
    model, in_shape, x, y, loss, opt, batch = mlp()
    _, params, state = model.init(pn.key(0), in_shape, np.float64)
    common = dict(state=state, epochs=2, batch_size=batch, seed=5, verbose=0)
    resumed = pn.fit(model, params, loss, opt, x, y, resume_from=str(tmp_path / "last.npz"),
                     **common)
    alone = pn.fit(model, params, loss, opt, x, y, **common)
    assert len(resumed.history) == 2
    assert relative_difference(resumed.params, alone.params) <= 1e-6


def test_the_time_estimate_says_when_it_is_for_one_process_of_several():
    import argparse
    import types
    from purenet.recipes.common import on_cores
    assert on_cores(argparse.Namespace()) == "on 2 cores"
    assert on_cores(argparse.Namespace(distributed=None)) == "on 2 cores"
    two = argparse.Namespace(distributed=types.SimpleNamespace(size=2))
    assert on_cores(two) == "for one process on 2 cores, less as 2 processes"
