"""The character-model commands end to end on a small text."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from purenet.cli import main
from purenet.recipes import shakespeare
from purenet.train import Callback

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n" * 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("text")
    (d / "tiny.txt").write_text(TEXT, encoding="utf-8")
    out = d / "run"
    code = main(["train", "shakespeare", "--text", str(d / "tiny.txt"), "--cell", "gru",
                 "--hidden", "32", "--embed", "8", "--seq-len", "16", "--batch-size", "8",
                 "--steps", "60", "--eval-every", "30", "--lr", "0.01", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    return out


def test_train_writes_metrics_model_and_curve(trained):
    report = json.loads((trained / "metrics.json").read_text())
    assert report["steps"] == 60 and [h["step"] for h in report["history"]] == [30, 60]
    first, last = report["history"][0]["val_loss"], report["history"][-1]["val_loss"]
    assert last < first < 3.5          # log(23 characters) = 3.1 is chance
    assert report["val_loss"] == min(first, last) and report["best_step"] == 60
    assert report["sample"].startswith("ROMEO:")
    assert (trained / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_generate_in_a_new_process_is_reproducible(trained):
    cmd = [sys.executable, "-m", "purenet", "generate", str(trained / "gru.npz"), "--prime", "But",
           "--length", "40", "--temperature", "0.5", "--seed", "3"]
    a = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    b = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert a == b and a.startswith("But") and len(a.rstrip("\n")) >= 43
    assert set(a) <= set(TEXT) | {"\n"}


def test_generate_with_an_unknown_character_is_a_clear_error(trained, capsys):
    assert main(["generate", str(trained / "gru.npz"), "--prime", "Zebra"]) == 2
    assert "Z" in capsys.readouterr().err


def test_missing_text_file_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "shakespeare", "--text", str(tmp_path / "none.txt"), "--steps", "1",
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "none.txt" in capsys.readouterr().err


# --- how a run ends: Ctrl-C, the time limit, divergence, and --resume ---------------

def tiny_args(d, out, *more):
    (d / "tiny.txt").write_text(TEXT, encoding="utf-8")
    return ["train", "shakespeare", "--text", str(d / "tiny.txt"), "--cell", "gru", "--hidden",
            "16", "--embed", "8", "--seq-len", "16", "--batch-size", "8", "--eval-every", "20",
            "--lr", "0.01", "--out", str(out), "--no-progress", *more]


class _CtrlC(Callback):
    """Presses Ctrl-C in the middle of epoch ``at`` (0-based)."""

    def __init__(self, at):
        self.at = at

    def on_batch_end(self, batch, logs, run):
        if run.epoch == self.at and batch == 3:
            raise KeyboardInterrupt


def pressing_ctrl_c(monkeypatch, at):
    real_fit = shakespeare.fit

    def fit(*args, callbacks=(), **kwargs):
        return real_fit(*args, callbacks=[*callbacks, _CtrlC(at)], **kwargs)
    monkeypatch.setattr(shakespeare, "fit", fit)


def test_ctrl_c_keeps_the_best_validated_params_apart(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    pressing_ctrl_c(monkeypatch, at=2)
    assert main(tiny_args(tmp_path, out, "--steps", "100")) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("purenet: interrupted")
    assert sorted(p.name for p in out.iterdir()) == ["interrupted"]
    report = json.loads((out / "interrupted" / "metrics.json").read_text())
    assert report["interrupted"] is True and report["val_loss"] is None
    assert [h["step"] for h in report["history"]] == [20, 40] and report["steps"] == 40
    assert report["best_step"] in (20, 40)
    assert (out / "interrupted" / "gru.npz").exists()


def test_resume_after_ctrl_c_ends_where_an_uninterrupted_run_does(tmp_path, monkeypatch):
    assert main(tiny_args(tmp_path, tmp_path / "whole", "--steps", "60")) == 0
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    ckpt = tmp_path / "ckpt"
    with monkeypatch.context() as patch:
        pressing_ctrl_c(patch, at=1)
        assert main(tiny_args(tmp_path, tmp_path / "parts", "--steps", "60",
                              "--checkpoint-dir", str(ckpt))) == 130
    assert main(tiny_args(tmp_path, tmp_path / "parts", "--steps", "60", "--checkpoint-dir",
                          str(ckpt), "--resume")) == 0
    parts = json.loads((tmp_path / "parts" / "metrics.json").read_text())
    assert [h["val_loss"] for h in parts["history"]] == [h["val_loss"] for h in whole["history"]]
    assert parts["sample"] == whole["sample"]


def test_minutes_is_a_hard_time_limit(tmp_path, monkeypatch):
    budget = shakespeare._budget
    monkeypatch.setattr(shakespeare, "_budget",
                        lambda args, step, validate: (10 ** 6, 0.5, budget(args, step, validate)[2]))
    start = time.perf_counter()
    assert main(tiny_args(tmp_path, tmp_path / "run", "--minutes", "1")) == 0
    assert time.perf_counter() - start < 20
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 < report["steps"] < 10 ** 6 and "time budget" in report["stop_reason"]


@pytest.mark.parametrize("seconds, per_step, per_validation, every", [
    (900, 0.17, 5.0, 500), (900, 0.2, 60.0, 100), (10, 0.3, 0.0, 7), (1, 2.0, 1.0, 5)])
def test_a_time_budget_counts_the_steps_that_fit_with_their_validations(
        seconds, per_step, per_validation, every):
    def cost(steps):
        return steps * per_step + -(-steps // every) * per_validation
    steps = shakespeare._steps_within(seconds, per_step, per_validation, every)
    assert steps >= 1
    assert cost(steps) <= seconds or steps == 1
    assert cost(steps + 1) > seconds


def test_a_diverged_text_model_is_reported_not_scored(tmp_path, capsys):
    code = main(tiny_args(tmp_path, tmp_path / "run", "--steps", "40", "--lr", "1000"))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("purenet: error: training diverged")
    report = json.loads((tmp_path / "run" / "diverged" / "metrics.json").read_text())
    assert report["diverged"] is True and report["val_loss"] is None
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_time_budget_with_dropout_trains(tmp_path):
    # the step timing that turns --minutes into steps once ran without a dropout key
    assert main(tiny_args(tmp_path, tmp_path / "run", "--minutes", "0.05", "--dropout", "0.2",
                          "--layers", "2")) == 0
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert report["steps"] > 0 and np.isfinite(report["val_loss"])
