"""trainer/step_pool.py: steps are reused per key, lent to one caller at a time, kept up to a number."""

import threading

import pytest

from trainer import step_pool


class Step:
    made = 0

    def __init__(self, name):
        Step.made += 1
        self.name = name


def test_a_returned_step_is_lent_again_for_its_key_only():
    pool = step_pool.StepPool(kept=4)
    with pool.lend("a", lambda: Step("a")) as first:
        pass
    with pool.lend("b", lambda: Step("b")) as other:
        assert other is not first
    with pool.lend("a", lambda: Step("a2")) as again:
        assert again is first
    assert [key for key, _ in pool.idle()] == ["b", "a"]


def test_a_step_is_lent_to_one_caller_at_a_time():
    pool = step_pool.StepPool(kept=4)
    with pool.lend("a", lambda: Step(1)) as outer:
        with pool.lend("a", lambda: Step(2)) as inner:
            assert inner is not outer and pool.idle() == []
    assert {step.name for _, step in pool.idle()} == {1, 2}


def test_two_threads_at_once_get_two_steps():
    pool, start, got = step_pool.StepPool(kept=4), threading.Barrier(2, timeout=60), []

    def borrow():
        with pool.lend("a", lambda: Step("a")) as step:
            start.wait()  # both hold a step here
            got.append(step)

    threads = [threading.Thread(target=borrow) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in got}) == 2 and len(pool.idle()) == 2


def test_idle_steps_beyond_the_kept_number_are_dropped_least_recently_returned_first():
    pool = step_pool.StepPool(kept=2)
    for key in ("w5", "w6", "w5", "w7"):  # w6 is then the least recently returned
        with pool.lend(key, lambda: Step(key)):
            pass
    assert [key for key, _ in pool.idle()] == ["w5", "w7"]


def test_a_step_whose_borrower_raised_is_dropped():
    pool = step_pool.StepPool(kept=4)
    with pytest.raises(ZeroDivisionError):
        with pool.lend("a", lambda: Step("a")):
            1 / 0
    assert pool.idle() == []
    made = Step.made
    with pool.lend("a", lambda: Step("a")):
        assert Step.made == made + 1
