"""Character text: deterministic vocabulary, encode/decode round trip, BPTT windows, files."""
import json

import numpy as np
import pytest

from purenet.data.text import (bptt_batches, bptt_streams, build_vocab, decode, encode,
                               load_text, num_bptt_batches, split_text, vocab_size)
from purenet.errors import DataError

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\nAll: Speak, speak! é✓"


def test_vocab_is_sorted_deterministic_and_json_able():
    vocab = build_vocab(TEXT)
    assert vocab["chars"] == sorted(set(TEXT))
    assert build_vocab(TEXT[::-1]) == vocab                # order of appearance does not matter
    assert json.loads(json.dumps(vocab)) == vocab
    assert vocab_size(vocab) == len(set(TEXT))


def test_encode_decode_round_trip():
    vocab = build_vocab(TEXT)
    ids = encode(TEXT, vocab)
    assert ids.dtype == np.int32 and ids.shape == (len(TEXT),)
    assert decode(ids, vocab) == TEXT
    assert decode(ids.reshape(1, -1), json.loads(json.dumps(vocab))) == TEXT
    assert [vocab["chars"][i] for i in ids[:5]] == list(TEXT[:5])
    assert decode([], vocab) == "" and encode("", vocab).shape == (0,)


def test_unknown_character_is_named():
    vocab = build_vocab("abc")
    with pytest.raises(DataError, match=r"'z' \(at position 2\)"):
        encode("abzc", vocab)
    with pytest.raises(DataError, match="id 3"):
        decode([0, 3], vocab)


def test_split_by_position():
    ids = np.arange(100)
    train, val = split_text(ids)
    np.testing.assert_array_equal(train, np.arange(90))
    np.testing.assert_array_equal(val, np.arange(90, 100))
    with pytest.raises(DataError):
        split_text(np.arange(3), 0.1)


def test_bptt_windows_are_contiguous_streams():
    ids = np.arange(103)
    x_streams, y_streams = bptt_streams(ids, 4)
    assert x_streams.shape == (4, 25)
    np.testing.assert_array_equal(y_streams, x_streams + 1)
    windows = list(bptt_batches(ids, batch_size=4, seq_len=10))
    assert len(windows) == num_bptt_batches(ids, 4, 10) == 2
    for x, y in windows:
        assert x.shape == y.shape == (4, 10)
        np.testing.assert_array_equal(y, x + 1)            # y is x shifted by one
    first, second = windows
    np.testing.assert_array_equal(second[0][:, 0], first[0][:, -1] + 1)   # rows continue
    np.testing.assert_array_equal(first[0][:, 0], [0, 25, 50, 75])
    last = list(bptt_batches(ids, 4, 10, drop_last=False))[-1][0]
    assert last.shape == (4, 5) and num_bptt_batches(ids, 4, 10, drop_last=False) == 3


def test_bptt_errors_raise_at_the_call():
    with pytest.raises(DataError, match="fewer than seq_len"):
        bptt_batches(np.arange(20), batch_size=4, seq_len=10)
    with pytest.raises(DataError, match="too few"):
        bptt_batches(np.arange(3), batch_size=4, seq_len=1)
    with pytest.raises(DataError, match="1-D integer"):
        bptt_batches(np.zeros((4, 5)), 2, 2)


def test_load_text(tmp_path):
    good = tmp_path / "t.txt"
    good.write_text(TEXT, encoding="utf-8")
    assert load_text(good) == TEXT
    with pytest.raises(DataError, match="no such file"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8.*byte 3"):
        load_text(tmp_path / "latin1.txt")
    with pytest.raises(DataError, match="not a file"):
        load_text(tmp_path)
