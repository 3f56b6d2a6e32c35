"""What fit prints: Keras's verbose levels, one full summary line per epoch whatever the
terminal's width, no leftover bars, callbacks' messages after the epoch's line."""
import io

import numpy as np
import pytest

from purenet.errors import ConfigError
from purenet.layers import Dense, serial
from purenet.optim import sgd
from purenet.random import key
from purenet.train import EarlyStopping, fit
from purenet.train.progress import format_logs, progress_bar, resolve_verbose


class FakeTerminal(io.StringIO):
    """stdout as a terminal 80 columns wide."""

    def isatty(self):
        return True


def screen(text):
    """The lines a terminal would show: each line as its last carriage return left it."""
    lines = [line.split("\r")[-1] for line in text.split("\n")]
    return [line for line in lines if line.strip()]


def mean_logit(pred, target):
    return float(np.mean(pred))


def classify(epochs, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 4)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(np.int64)
    model = serial(Dense(2))
    _, params, _ = model.init(key(0), (4,))
    return fit(model, params, "softmax_cross_entropy", sgd(0.1), x, labels, epochs=epochs,
               batch_size=16, validation_split=0.25, metrics=["accuracy", mean_logit], **kwargs)


@pytest.mark.parametrize("bar", ["tqdm", "text"])
def test_a_terminal_gets_a_bar_that_ends_in_a_full_summary_line(bar, monkeypatch):
    if bar == "tqdm":
        pytest.importorskip("tqdm")
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setenv("COLUMNS", "80")
    if bar == "text":
        monkeypatch.setattr("purenet.train.progress._tqdm", lambda: None)
    classify(epochs=3)                                   # verbose="auto": a terminal gets 1
    lines = screen(terminal.getvalue())
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    for line in lines:
        for name in ("loss", "accuracy", "mean_logit", "val_loss", "val_accuracy", "val_mean_logit",
                     "lr"):
            assert f" {name} " in line
        assert len(line) > 80 and line.endswith("s")   # longer than the terminal: not cut


def test_a_long_run_prints_one_line_per_epoch_and_nothing_else(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stdout", terminal)
    classify(epochs=60, verbose=1, callbacks=[EarlyStopping(patience=100)])
    lines = screen(terminal.getvalue())
    assert len(lines) == 60 and all(line.startswith(f"epoch {i + 1}/60  loss")
                                    for i, line in enumerate(lines))


def test_a_log_file_gets_plain_lines(capsys):
    classify(epochs=3)                                   # stdout is not a terminal: verbose 2
    out = capsys.readouterr().out
    assert "\r" not in out and len(out.splitlines()) == 3
    assert out.splitlines()[2].startswith("epoch 3/3  loss ")


@pytest.mark.parametrize("verbose", [0, False])
def test_silence(verbose, capsys):
    classify(epochs=2, verbose=verbose)
    assert capsys.readouterr() == ("", "")
    classify(epochs=2, progress=False)
    assert capsys.readouterr() == ("", "")


def test_callback_messages_follow_the_epochs_summary(capsys):
    classify(epochs=20, verbose=2,
             callbacks=[EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.5)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("epoch 1/20") and lines[1].startswith("epoch 2/20")
    assert lines[2].startswith("epoch 2: early stopping: val_accuracy did not improve")
    assert len(lines) == 3


@pytest.mark.parametrize("verbose, progress, expected", [
    (0, None, (0, "auto")), (1, None, (1, "auto")), (2, None, (2, "auto")),
    ("auto", None, (2, "auto")),                          # captured stdout is no terminal
    ("auto", False, (0, "auto")), ("auto", True, (2, "auto")),
    ("auto", "text", (1, "text")), ("auto", "tqdm", (1, "tqdm")),
])
def test_verbose_and_the_older_progress(verbose, progress, expected):
    assert resolve_verbose(verbose, progress) == expected
    assert resolve_verbose("auto", stream=FakeTerminal()) == (1, "auto")


@pytest.mark.parametrize("verbose, progress", [(3, None), ("1", None), (1.0, None),
                                              (1, True), ("auto", "fancy")])
def test_bad_verbose_is_an_error(verbose, progress):
    with pytest.raises(ConfigError, match="verbose|progress"):
        resolve_verbose(verbose, progress)


def test_format_logs_shows_every_number_but_the_epoch():
    logs = {"epoch": 3, "loss": 0.123456, "val_accuracy": 0.9, "lr": 1e-3, "note": "x",
            "seconds": 1.5}
    assert format_logs(logs) == "loss 0.1235  val_accuracy 0.9  lr 0.001  1.50s"


def test_progress_bar_for_other_loops(capsys):
    bar = progress_bar("text", 100, 0, 1, unit="chars", desc="training")
    bar.update(50, 1.5)
    bar.close({"val_loss": 1.25})
    assert screen(capsys.readouterr().out) == ["training  val_loss 1.25"]
    silent = progress_bar(False, 100, 0, 1)
    silent.update(10, 1.0)
    silent.close({"loss": 1.0})
    assert capsys.readouterr() == ("", "")
