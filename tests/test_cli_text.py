"""The character-model commands end to end on a small text."""
import json
import subprocess
import sys

import pytest

from purenet.cli import main

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
