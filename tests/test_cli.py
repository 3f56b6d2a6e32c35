"""The command line, end to end, on data the package ships."""
import json
import subprocess
import sys

import numpy as np
import pytest

from purenet.cli import main
from purenet.recipes.boston import BOOK


@pytest.fixture(scope="module")
def boston_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("boston")
    assert main(["train", "boston", "--out", str(out), "--no-progress"]) == 0
    return out


def test_boston_writes_metrics_models_and_plot(boston_run):
    report = json.loads((boston_run / "metrics.json").read_text())
    assert set(report["test"]) == {"linear", "nn", "dl", "purenet"}
    assert report["seed"] == 80718 and report["versions"]["numpy"] == np.__version__
    assert report["wall_seconds"] > 0
    for name in report["test"]:
        assert (boston_run / f"boston_{name}.npz").stat().st_size > 0
        assert len(report["history"][name]["logs"]) > 0
    assert (boston_run / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_boston_lands_near_the_books_figures(boston_run):
    test = json.loads((boston_run / "metrics.json").read_text())["test"]
    for name, (book_mae, book_rmse) in BOOK.items():
        assert abs(test[name]["mae"] - book_mae) < 0.15 * book_mae, name
        assert abs(test[name]["rmse"] - book_rmse) < 0.15 * book_rmse, name
    best_book = min(BOOK.values())
    assert test["purenet"]["mae"] < best_book[0] and test["purenet"]["rmse"] < best_book[1]


def test_summary_of_a_saved_model_in_a_new_process(boston_run):
    out = subprocess.run([sys.executable, "-m", "purenet", "summary", str(boston_run / "boston_dl.npz")],
                         capture_output=True, text=True, check=True).stdout
    assert "dense_0" in out and "dense_2" in out
    assert "total parameters 378" in out   # (13*13+13) * 2 + 13+1


def test_summary_of_a_corrupted_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a model")
    assert main(["summary", str(bad)]) == 2
    assert "bad.npz" in capsys.readouterr().err


def test_unknown_dataset_is_rejected(capsys):
    assert main(["train", "no-such-data"]) == 2
    assert "no-such-data" in capsys.readouterr().err


def test_boston_metrics_say_how_the_run_ended(boston_run):
    report = json.loads((boston_run / "metrics.json").read_text())
    assert report["status"] == "complete" and not report["interrupted"] and not report["diverged"]
    for name, model in report["models"].items():
        assert model["epochs"] == model["epochs_requested"] == len(report["history"][name]["logs"])
    assert not (boston_run / "interrupted").exists() and not (boston_run / "diverged").exists()
