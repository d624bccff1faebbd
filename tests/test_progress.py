"""Progress lines: in place on a terminal; in a log file, at most one every few seconds, and the last."""

import io

from trainer import progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_log_file_gets_a_sampler_line_every_few_seconds_and_the_last(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    out = io.StringIO()
    bar = progress.ProgressBar(100, 0, stream=out, every_secs=5.0)
    for step in range(1, 101):  # a batch every 0.5 s: 50 s in all
        clock.now += 0.5
        bar.update(step, 10.0)
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 12 and lines[-1].startswith("[" + "#" * 24 + "] step 100/100")
    unthrottled = io.StringIO()
    bar = progress.ProgressBar(10, 0, stream=unthrottled)
    for step in range(1, 11):
        bar.update(step, 1.0)
    assert len(unthrottled.getvalue().splitlines()) == 10  # every_secs=0: a line per batch


def test_a_counter_prints_done_total_elapsed_and_a_final_line(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    out = io.StringIO()
    counter = progress.Progress("staging gs://b/x", 40, "files", stream=out, every_secs=5.0)
    for _ in range(40):
        clock.now += 1.0
        counter.advance()
    counter.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "staging gs://b/x: 5/40 files, 00:05 elapsed, ETA 00:35"
    assert lines[-1] == "staging gs://b/x: 40/40 files, 00:40 elapsed" and len(lines) == 8
    quiet = io.StringIO()
    counter = progress.Progress("x", 3, stream=quiet, enabled=False)
    counter.advance(3)
    counter.close()
    assert quiet.getvalue() == ""
