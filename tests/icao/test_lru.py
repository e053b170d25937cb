from __future__ import annotations

import threading

import pytest

from icao_pki.lru import BoundedSet


def test_bounded_set_forgets_the_least_recently_used() -> None:
    members = BoundedSet(3)
    for item in ("a", "b", "c"):
        members.add(item)
    assert "a" in members  # a is now the most recently used: b goes first
    members.add("d")
    assert "b" not in members and {"a", "c", "d"} == {x for x in "abcd" if x in members}
    assert len(members) == 3
    members.add("a")  # adding a member again keeps one copy
    assert len(members) == 3
    members.clear()
    assert len(members) == 0 and "a" not in members
    with pytest.raises(ValueError):
        BoundedSet(0)


def test_bounded_set_stays_bounded_under_threads() -> None:
    members = BoundedSet(64)

    def work(base: int) -> None:
        for i in range(2000):
            members.add((base, i))
            _ = (base, i - 1) in members

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(members) == 64
