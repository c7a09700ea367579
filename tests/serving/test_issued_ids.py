"""``service.IssuedIds``: no request or instance id is issued twice within what it remembers."""
from __future__ import annotations

import re

import pytest

from driftguard.serving.service import IssuedIds, instance_ids


def test_a_reused_id_or_an_instance_id_collision_is_rewritten():
    ids = IssuedIds()
    assert ids.issue("coll", 2) == "coll"                      # logs coll-0, coll-1
    again = ids.issue("coll-0", 1)
    assert re.fullmatch(r"coll-0\.[0-9a-f]{8}", again)
    second = ids.issue("coll", 2)
    assert re.fullmatch(r"coll\.[0-9a-f]{8}", second) and second != again
    assert ids.issue("pair-1", 1) == "pair-1"
    assert ids.issue("pair", 2) != "pair"                       # pair-1 was issued
    assert len(ids.issue("L" * 128, 1)) == 128 and len(ids.issue("L" * 128, 1)) == 128
    assert instance_ids("r", 1) == ["r"] and instance_ids("r", 3) == ["r-0", "r-1", "r-2"]


def test_ids_older_than_the_capacity_are_forgotten_and_the_newest_half_kept():
    ids = IssuedIds(capacity=4)
    for i in range(10):
        assert ids.issue(f"id{i}", 1) == f"id{i}"
    assert ids.issue("id9", 1) != "id9" and ids.issue("id8", 1) != "id8"   # remembered
    assert ids.issue("id0", 1) == "id0"                                    # forgotten
    with pytest.raises(ValueError, match="capacity must be >= 2, got 1"):
        IssuedIds(capacity=1)
