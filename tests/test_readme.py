"""The README's Python blocks run as written, in order, in one namespace."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_every_python_block_runs_and_its_comments_hold(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.chdir(tmp_path)                 # the blocks write under runs/
    blocks = python_blocks()
    assert len(blocks) >= 8
    namespace = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    pn, np = namespace["pn"], namespace["np"]
    assert float(pn.grad(lambda x: (4 * x + 3) ** 2)(2.0)) == 88.0
    assert {k: v.shape for k, v in namespace["grads"].items()} == {
        "W1": (3, 8), "b1": (8,), "W2": (8, 1)}
    for block in blocks[1:]:
        exec(compile(block, str(README), "exec"), namespace)
    np.testing.assert_allclose(namespace["cube"](np.array([2.0])), [8.0])
    assert (tmp_path / "runs/tour/model.onnx").exists()
    assert (tmp_path / "runs/tour/log.csv").read_text().startswith("epoch")
