"""Bad input to the command line: every expected error is one line on stderr,
``purenet: error: ...`` naming the flag or file, with exit status 2 (and never a
traceback); Ctrl-C and divergence never replace an earlier run's files."""
import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from purenet import Dense, key, save_model, serial
from purenet.cli import build_parser, main
from purenet.data import write_idx
from purenet.data.text import build_vocab
from purenet.recipes import boston, fashion_mnist
from purenet.recipes.autoencoder_model import autoencoder
from purenet.recipes.shakespeare import char_model
from purenet.train import Callback

TEXT = "To be, or not to be: that is the question.\n" * 30


def synthetic_idx(directory, n_train=200, n_test=50):
    """MNIST-format files of 10 easy classes (a bright bar per class)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for c in range(10):
            images[labels == c, 2 + 2 * c: 4 + 2 * c, 4:24] = 250
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels)
    return directory


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small model files of each kind, data, and things that are not what they claim."""
    d = tmp_path_factory.mktemp("inputs")
    model = serial(Dense(1))
    _, params, state = model.init(key(0), (13,))
    save_model(d / "boston.npz", model, params, state, in_shape=(13,),
               extra={"recipe": "boston", "model": "linear"})
    vocab = build_vocab(TEXT)
    model = char_model(len(vocab["chars"]), "gru", hidden=8, embed=4)
    _, params, _ = model.init(key(0), (None,))
    save_model(d / "chars.npz", model, params, {}, in_shape=(None,),
               extra={"recipe": "shakespeare", "vocab": vocab, "seq_len": 8})
    model = fashion_mnist.book()
    _, params, state = model.init(key(0), (1, 28, 28))
    save_model(d / "image.npz", model, params, state, in_shape=(1, 28, 28),
               extra={"recipe": "fashion-mnist", "model": "book",
                      "classes": [str(i) for i in range(10)],
                      "preprocess": {"mean": 0.2, "std": 0.3}})
    model = autoencoder(4)
    _, params, state = model.init(key(0), (1, 28, 28))
    save_model(d / "ae.npz", model, params, state, in_shape=(1, 28, 28),
               extra={"recipe": "autoencoder", "latent": 4})
    (d / "damaged.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{\"w\": 1")
    (d / "notes.txt").write_text("not a model")
    (d / "text.txt").write_text(TEXT)
    (d / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(d / "nan.npy", np.full((1, 28, 28), np.nan))
    np.save(d / "tiny.npy", np.zeros((1, 5, 5), np.uint8))
    (d / "afile").write_text("in the way")
    (d / "idx").mkdir()
    synthetic_idx(d / "idx")
    (d / "empty").mkdir()
    return d


def run_main(capsys, argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def assert_one_line_error(code, captured, *names, status=2):
    err = captured.err
    assert code == status, (code, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("purenet: error: "), err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])


# (case id, argv with {d} for the files directory, what the one-line message names)
CASES = [
    # values that mean nothing: argparse errors naming the flag
    ("epochs-0", ["train", "boston", "--epochs", "0"], ["--epochs", "'0'"]),
    ("epochs-negative", ["train", "boston", "--epochs", "-3"], ["--epochs"]),
    ("epochs-not-a-number", ["train", "boston", "--epochs", "ten"], ["--epochs", "ten"]),
    ("lr-nan", ["train", "boston", "--lr", "nan"], ["--lr", "nan"]),
    ("lr-negative", ["train", "boston", "--lr", "-0.1"], ["--lr"]),
    ("seed-negative", ["train", "boston", "--seed", "-1"], ["--seed"]),
    ("batch-size-0", ["train", "fashion-mnist", "--batch-size", "0"], ["--batch-size"]),
    ("model-typo", ["train", "fashion-mnist", "--model", "mpl"], ["--model", "mpl"]),
    ("steps-0", ["train", "shakespeare", "--steps", "0"], ["--steps"]),
    ("eval-every-0", ["train", "shakespeare", "--eval-every", "0"], ["--eval-every"]),
    ("layers-0", ["train", "shakespeare", "--layers", "0"], ["--layers"]),
    ("hidden-0", ["train", "shakespeare", "--hidden", "0"], ["--hidden"]),
    ("dropout-1", ["train", "shakespeare", "--dropout", "1"], ["--dropout"]),
    ("minutes-inf", ["train", "shakespeare", "--minutes", "inf"], ["--minutes"]),
    ("minutes-and-steps", ["train", "shakespeare", "--minutes", "1", "--steps", "5"],
     ["--steps", "--minutes"]),
    ("temperature-nan", ["generate", "{d}/chars.npz", "--temperature", "nan"], ["--temperature"]),
    ("temperature-0", ["generate", "{d}/chars.npz", "--temperature", "0"], ["--temperature"]),
    ("length-negative", ["generate", "{d}/chars.npz", "--length", "-5"], ["--length"]),
    ("generate-seed-negative", ["generate", "{d}/chars.npz", "--seed", "-1"], ["--seed"]),
    # typos and missing pieces
    ("flag-typo", ["train", "boston", "--epcohs", "3"], ["--epcohs", "did you mean --epochs"]),
    ("unknown-dataset", ["train", "no-such-data"], ["no-such-data"]),
    ("no-command", [], ["COMMAND"]),
    ("evaluate-needs-data", ["evaluate", "{d}/image.npz"], ["--data"]),
    ("evaluate-text-data", ["evaluate", "{d}/image.npz", "--data", "shakespeare"],
     ["--data", "shakespeare"]),
    ("mnist-needs-data-dir", ["train", "mnist", "--out", "{d}/o"], ["--data-dir"]),
    # output and checkpoint paths, checked before any training
    ("out-is-a-file", ["train", "boston", "--out", "{d}/afile"], ["--out", "afile"]),
    ("out-under-a-file", ["train", "boston", "--out", "{d}/afile/run"], ["--out", "afile"]),
    ("checkpoint-dir-is-a-file",
     ["train", "boston", "--out", "{d}/o", "--checkpoint-dir", "{d}/afile"],
     ["--checkpoint-dir", "afile"]),
    ("resume-without-checkpoint-dir", ["train", "boston", "--out", "{d}/o", "--resume"],
     ["--resume", "--checkpoint-dir"]),
    ("resume-nothing-there",
     ["train", "fashion-mnist", "--data-dir", "{d}/idx", "--out", "{d}/o", "--checkpoint-dir",
      "{d}/empty", "--resume"], ["--resume", "empty"]),
    # files that are not what the command needs
    ("summary-text-file", ["summary", "{d}/notes.txt"], ["notes.txt"]),
    ("summary-directory", ["summary", "{d}/empty"], ["empty"]),
    ("summary-missing", ["summary", "{d}/missing.npz"], ["missing.npz"]),
    ("evaluate-boston-model",
     ["evaluate", "{d}/boston.npz", "--data", "mnist", "--data-dir", "{d}/idx"],
     ["boston.npz", "image model"]),
    ("evaluate-char-model",
     ["evaluate", "{d}/chars.npz", "--data", "mnist", "--data-dir", "{d}/idx"], ["chars.npz"]),
    ("evaluate-missing-idx", ["evaluate", "{d}/image.npz", "--data", "mnist", "--data-dir",
                              "{d}/empty"], ["empty"]),
    ("predict-boston-model", ["predict", "{d}/boston.npz", "{d}/nan.npy"], ["boston.npz"]),
    ("predict-junk-npy", ["predict", "{d}/image.npz", "{d}/junk.npy"], ["junk.npy"]),
    ("predict-nan-npy", ["predict", "{d}/image.npz", "{d}/nan.npy"], ["nan.npy", "NaN"]),
    ("predict-wrong-size", ["predict", "{d}/image.npz", "{d}/tiny.npy"], ["tiny.npy", "28x28"]),
    ("predict-missing-image", ["predict", "{d}/image.npz", "{d}/missing.png"], ["missing.png"]),
    ("predict-text-as-image", ["predict", "{d}/image.npz", "{d}/notes.txt"], ["notes.txt"]),
    ("predict-not-a-model", ["predict", "{d}/notes.txt", "{d}/nan.npy"], ["notes.txt"]),
    ("generate-image-model", ["generate", "{d}/image.npz"], ["image.npz"]),
    ("generate-unknown-character", ["generate", "{d}/chars.npz", "--prime", "Zebra"], ["Z"]),
    ("text-missing", ["train", "shakespeare", "--text", "{d}/none.txt", "--out", "{d}/o"],
     ["none.txt"]),
    ("summary-damaged-safetensors", ["summary", "{d}/damaged.safetensors"],
     ["damaged.safetensors", "truncated"]),
    # the autoencoder, encode and export
    ("latent-0", ["train", "autoencoder", "--latent", "0"], ["--latent", "'0'"]),
    ("autoencoder-missing-idx", ["train", "autoencoder", "--data-dir", "{d}/empty", "--out",
                                 "{d}/o"], ["empty", "train-images-idx3-ubyte"]),
    ("autoencoder-out-is-a-file", ["train", "autoencoder", "--data-dir", "{d}/idx", "--out",
                                   "{d}/afile"], ["--out", "afile"]),
    ("encode-image-model", ["encode", "{d}/image.npz", "{d}/tiny.npy"],
     ["image.npz", "autoencoder"]),
    ("encode-boston-model", ["encode", "{d}/boston.npz", "{d}/tiny.npy"], ["boston.npz"]),
    ("encode-not-a-model", ["encode", "{d}/notes.txt", "{d}/tiny.npy"], ["notes.txt"]),
    ("encode-needs-images", ["encode", "{d}/ae.npz"], ["inputs"]),
    ("encode-wrong-size", ["encode", "{d}/ae.npz", "{d}/tiny.npy"], ["tiny.npy", "28x28"]),
    ("encode-nan-npy", ["encode", "{d}/ae.npz", "{d}/nan.npy"], ["nan.npy", "NaN"]),
    ("encode-missing-image", ["encode", "{d}/ae.npz", "{d}/missing.png"], ["missing.png"]),
    ("export-needs-format", ["export", "{d}/boston.npz"], ["--format"]),
    ("export-format-typo", ["export", "{d}/boston.npz", "--format", "onx"], ["--format", "onx"]),
    ("export-not-a-model", ["export", "{d}/notes.txt", "--format", "safetensors"],
     ["notes.txt"]),
    ("export-out-under-a-file", ["export", "{d}/boston.npz", "--format", "safetensors", "-o",
                                 "{d}/afile/m.safetensors"], ["afile"]),
    ("text-too-short", ["train", "shakespeare", "--text", "{d}/text.txt", "--batch-size", "64",
                        "--seq-len", "64", "--steps", "1", "--out", "{d}/o"],
     ["--batch-size", "--seq-len"]),
]


@pytest.mark.parametrize("argv, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_the_flag_or_file(files, capsys, argv, names):
    argv = [a.format(d=files) for a in argv]
    code, captured = run_main(capsys, [*argv, "--no-progress"] if argv[:1] == ["train"] else argv)
    assert_one_line_error(code, captured, *names)
    assert not (files / "o").exists() or not any((files / "o").iterdir())


def _can_write(directory):
    try:
        tempfile.TemporaryFile(dir=directory).close()
    except OSError:
        return False
    return True


def test_an_unwritable_out_is_refused_before_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        target = locked / "run"
        if _can_write(locked):                     # root writes anyway: find another place
            if not os.path.isdir("/sys") or _can_write("/sys"):
                pytest.skip("no directory here that this user cannot write to")
            target = "/sys/purenet-run"
        code, captured = run_main(capsys, ["train", "boston", "--out", target, "--no-progress"])
        assert_one_line_error(code, captured, "--out", "cannot write")
        assert captured.out == ""                  # refused before any training
    finally:
        locked.chmod(0o755)


def test_a_process_reports_one_line_and_status_2(files):
    result = subprocess.run([sys.executable, "-m", "purenet", "summary", str(files / "notes.txt")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("purenet: error: ")
    result = subprocess.run([sys.executable, "-m", "purenet", "train", "boston", "--epochs", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--epochs" in result.stderr


def test_version_and_help_show_every_default(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("purenet ")
    parser = build_parser()

    def commands(p, prefix):
        yield prefix, p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from commands(sub, f"{prefix} {name}")

    seen = 0
    for name, p in commands(parser, "purenet"):
        for action in p._actions:
            if not action.option_strings or action.dest in ("help", "version") \
                    or action.required:
                continue
            seen += 1
            assert "default" in (action.help or ""), f"{name} {action.option_strings[0]}"
    assert seen > 30
    assert main(["train", "fashion-mnist", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    cnn_duration = fashion_mnist.MODELS["cnn"].duration.removeprefix("about ")
    assert "default: cnn" in text and cnn_duration in text and "11-14 min" in text
    assert "default: runs/fashion-mnist" in text and "runs/runs" not in text


# --- divergence and Ctrl-C ---------------------------------------------------------

def digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def quick_boston(monkeypatch):
    """The boston recipe with a 2-epoch purenet model, so a whole run takes a second."""
    monkeypatch.setattr(boston, "PURENET_EPOCHS", 2)


def test_a_diverged_run_says_so_and_keeps_the_earlier_run(tmp_path, capsys, quick_boston):
    out = tmp_path / "run"
    assert main(["train", "boston", "--epochs", "2", "--out", out, "--no-progress"]) == 0
    before = digest(out)
    code, captured = run_main(capsys, ["train", "boston", "--epochs", "2", "--lr", "1000",
                                       "--out", out, "--no-progress"])
    assert code == 1 and "Traceback" not in captured.err
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("purenet: error: training diverged") and "--lr" in last
    assert digest(out) == before
    report = json.loads((out / "diverged" / "metrics.json").read_text())
    assert report["diverged"] is True and report["status"] == "diverged"
    for name in ("linear", "nn", "dl"):
        assert report["test"][name]["mae"] is None and report["models"][name]["diverged"]
    assert report["test"]["purenet"]["mae"] > 0      # the model --lr does not touch
    assert "diverged" in captured.out                 # the table says so, with no number


class _CtrlC(Callback):
    """Presses Ctrl-C in the middle of epoch ``at`` (0-based)."""

    def __init__(self, at):
        self.at = at

    def on_batch_end(self, batch, logs, run):
        if run.epoch == self.at and batch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_stops_the_whole_boston_command(tmp_path, capsys, monkeypatch, quick_boston):
    out = tmp_path / "run"
    assert main(["train", "boston", "--epochs", "3", "--out", out, "--no-progress"]) == 0
    before = digest(out)
    real_fit, calls = boston.fit, []

    def fit_pressing_ctrl_c(*args, **kwargs):
        calls.append(1)
        return real_fit(*args, callbacks=[_CtrlC(at=2)], **kwargs)

    monkeypatch.setattr(boston, "fit", fit_pressing_ctrl_c)
    code, captured = run_main(capsys, ["train", "boston", "--epochs", "5", "--out", out,
                                       "--no-progress"])
    assert code == 130 and len(calls) == 1             # the next models never started
    assert captured.err.strip().splitlines()[-1].startswith("purenet: interrupted")
    assert digest(out) == before
    report = json.loads((out / "interrupted" / "metrics.json").read_text())
    assert report["interrupted"] is True and report["test"] == {}
    assert report["models"]["linear"]["epochs"] == 2
    assert len(report["history"]["linear"]["logs"]) == 2
    assert (out / "interrupted" / "boston_linear.npz").exists()


def test_sigint_keeps_the_last_epoch_and_never_the_earlier_runs_files(files, tmp_path):
    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    common = ["--data-dir", str(files / "idx"), "--model", "mlp", "--batch-size", "32",
              "--out", str(out), "--no-progress"]
    assert main(["train", "mnist", *common, "--epochs", "1"]) == 0
    before = digest(out)
    command = [sys.executable, "-m", "purenet", "train", "mnist", *common, "--epochs", "500",
               "--checkpoint-dir", str(ckpt)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (ckpt / "last.npz").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)                             # the first epoch is done when it appears
    time.sleep(0.3)                                  # and its checkpoint written whole
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("purenet: interrupted")
    assert digest(out) == before
    report = json.loads((out / "interrupted" / "metrics.json").read_text())
    assert report["interrupted"] is True and report["test_accuracy"] is None
    assert 1 <= report["epochs"] < 500 and report["epochs_requested"] == 500
    assert report["epochs"] == len(report["history"]["logs"])
    assert (out / "interrupted" / "mlp.npz").exists()
    # the same command with --resume continues from the checkpoint, here to one more epoch
    done = report["epochs"] + 1
    assert main(["train", "mnist", *common, "--epochs", str(done), "--checkpoint-dir", ckpt,
                 "--resume"]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["epochs"] == done and resumed["interrupted"] is False
