"""trainer/score_cache.py: judge scores by content; anything but the expected numbers in a file is a miss."""

import json
import math
import os
import threading

import numpy as np

from trainer import score_cache


def key(cache, **changes):
    parts = dict(data="d", recipe="r", classifier="c", seed=0, score="accuracy") | changes
    return cache.key(**parts)


def test_scores_round_trip_and_every_input_changes_the_key(tmp_path):
    cache = score_cache.ScoreCache(str(tmp_path / "s"))
    assert cache.get(key(cache), 1) is None  # the folder does not exist yet
    cache.put(key(cache), (0.75,))
    cache.put(key(cache, score="accuracy+log_likelihood"), (1.0, -math.inf))
    assert cache.get(key(cache), 1) == (0.75,)
    assert cache.get(key(cache, score="accuracy+log_likelihood"), 2) == (1.0, -math.inf)
    assert cache.get(key(cache), 2) is None  # not the number of values asked for
    cache.put(key(cache, score="sums"), (3.0, 2.0))  # not a score, but what its caller's rule accepts
    assert cache.get(key(cache, score="sums"), 2) is None
    assert cache.get(key(cache, score="sums"), 2, valid=lambda v: v[1] <= v[0]) == (3.0, 2.0)
    wide = tuple(float(-k) for k in range(600))  # one fold's per-class sums of 200 classes: ~7 kB of JSON
    cache.put(key(cache, score="wide"), wide)
    assert cache.get(key(cache, score="wide"), 600, valid=lambda v: True) == wide
    keys = {key(cache)} | {
        key(cache, **{name: value})
        for name, value in dict(data="d2", recipe="r2", classifier="c2", seed=1, score="balanced_accuracy").items()
    }
    assert len(keys) == 6 and all(len(k) == 32 and k.isalnum() for k in keys)
    assert not [f for f in os.listdir(tmp_path / "s") if ".tmp" in f]  # writes are atomic: no leftovers


def test_array_digests_see_dtype_shape_content_and_order():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    digest = score_cache.digest_arrays(a, None)
    assert digest == score_cache.digest_arrays(a.copy(), None)
    assert digest != score_cache.digest_arrays(a.reshape(4, 3), None)
    assert digest != score_cache.digest_arrays(a.astype(np.int16), None)
    assert digest != score_cache.digest_arrays(None, a)
    b = a.copy()
    b[2, 3] += 1
    assert digest != score_cache.digest_arrays(b, None)


def test_a_hostile_or_broken_cache_file_is_a_miss_and_is_rewritten(tmp_path):
    cache = score_cache.ScoreCache(str(tmp_path))
    k = key(cache)
    path = tmp_path / f"{k}.json"
    for content in [
        b"",
        b"\xff\xfe not json",
        b"[0.5]",
        json.dumps({"version": 2, "value": [0.5]}).encode(),
        json.dumps({"version": 1, "value": "0.5"}).encode(),
        json.dumps({"version": 1, "value": [True]}).encode(),
        json.dumps({"version": 1, "value": [None]}).encode(),
        b'{"version": 1, "value": [NaN]}',
        b'{"version": 1, "value": [Infinity]}',
        b'{"version": 1, "value": [1e999]}',
        b'{"version": 1, "value": [5.0]}',  # not a score
        b'{"version": 1, "value": [-0.1]}',
        b'{"version": 1, "value": [1' + b"0" * 400 + b"]}",  # an integer too large for a float
        b'{"version": 1, "value": [' + b"9" * 5000 + b"]}",  # longer than any score file: not read whole
        b"[" * 100000,  # nesting deeper than Python's recursion limit
        b'{"version": 1, "value": [0.5]}' + b" " * score_cache.MAX_BYTES,  # valid, but larger than any score
    ]:
        path.write_bytes(content)
        assert cache.get(k, 1) is None, content[:40]
    cache.put(k, (0.5,))
    assert cache.get(k, 1) == (0.5,)
    pair = key(cache, score="pair")
    cache.put(pair, (0.5, 0.3))  # a log-likelihood above 0 is not one
    assert cache.get(pair, 2) is None
    cache.put(pair, (0.5, -0.3))
    assert cache.get(pair, 2) == (0.5, -0.3)


def test_a_fifo_or_a_link_in_place_of_a_score_file_is_a_miss_without_blocking(tmp_path):
    cache = score_cache.ScoreCache(str(tmp_path))
    fifo, link = key(cache, seed=1), key(cache, seed=2)
    os.mkfifo(tmp_path / f"{fifo}.json")  # reading it would wait for a writer forever
    (tmp_path / "elsewhere.json").write_text(json.dumps({"version": 1, "value": [0.5]}))
    os.symlink(tmp_path / "elsewhere.json", tmp_path / f"{link}.json")
    results = []
    reader = threading.Thread(target=lambda: results.extend([cache.get(fifo, 1), cache.get(link, 1)]), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive() and results == [None, None]


def test_no_folder_remembers_nothing_and_an_unwritable_folder_is_skipped(tmp_path):
    off = score_cache.ScoreCache()
    off.put(key(off), (0.5,))
    assert off.get(key(off), 1) is None
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    blocked = score_cache.ScoreCache(str(blocker / "scores"))
    blocked.put(key(blocked), (0.5,))  # no exception: the score is simply not remembered
    assert blocked.get(key(blocked), 1) is None
    assert score_cache.ScoreCache.default().folder.endswith("judge_scores")
