"""What a subject's status keeps pending (stratops.audit.still_pending): every line the trail is
not known to hold, in chain order, the newest PENDING_MAX (the CRDs' maxItems)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from stratops.audit import PENDING_MAX, entry_seq, still_pending


def _lines(seqs: range) -> list[str]:
    return [json.dumps({"seq": n, "reason": "KillSwitch"}) for n in seqs]


def test_lines_the_trail_holds_are_dropped_and_the_rest_kept_before_the_new():
    prior = _lines(range(1, 6))
    assert [entry_seq(x) for x in still_pending(prior, 3, _lines(range(6, 8)))] == [4, 5, 6, 7]
    assert [entry_seq(x) for x in still_pending(prior, 5, _lines(range(6, 7)))] == [6]
    assert still_pending(None, 0, _lines(range(1, 2))) == _lines(range(1, 2))


@given(held=st.integers(0, 300), last=st.integers(0, 300), new=st.integers(1, 5))
def test_never_more_than_the_crd_allows_and_always_in_order_with_the_newest(held: int, last: int, new: int) -> None:
    held = min(held, last)  # the trail cannot hold more than the chain had before this decision
    prior = _lines(range(1, last + 1))
    fresh = _lines(range(last + 1, last + 1 + new))
    out = [entry_seq(x) for x in still_pending(prior, held, fresh)]
    assert len(out) <= PENDING_MAX and out == sorted(set(out))
    assert out[-new:] == list(range(last + 1, last + 1 + new)), "the decision's own lines are never dropped"
    assert out[0] == max(held + 1, last + 1 + new - PENDING_MAX), "every line the trail lacks, up to the bound"
