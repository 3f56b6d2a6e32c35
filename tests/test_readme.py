"""The README's tour runs as written (its first sections: grad, primitives, layers)."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def tour_blocks(until="### Losses"):
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A tour"):text.index(until)]
    return re.findall(r"```python\n(.*?)```", tour, flags=re.S)


def test_tour_snippets_run_and_their_comments_hold():
    blocks = tour_blocks()
    assert len(blocks) >= 4
    namespace = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    pn, np = namespace["pn"], namespace["np"]
    assert float(pn.grad(lambda x: (4 * x + 3) ** 2)(2.0)) == 88.0
    assert {k: v.shape for k, v in namespace["grads"].items()} == {
        "W1": (3, 8), "b1": (8,), "W2": (8, 1)}
    for block in blocks[1:]:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["params"]["head"]["W"].shape == (13, 1)
    np.testing.assert_allclose(namespace["cube"](np.array([2.0])), [8.0])
