"""The handover's CLI pieces without a cluster: --book parsing, and describe's handover lines."""

from __future__ import annotations

import pytest

from stratops.cli.describe import handover_lines
from stratops.cli.lifecycle import CliError, parse_book


def test_a_book_is_read_by_instrument_and_a_bad_entry_named():
    assert parse_book(["EURUSD=250000", "GBPUSD=-40000.5"]) == {"EURUSD": 250000.0, "GBPUSD": -40000.5}
    for entries, why in (
        ([], "--book is required"),
        (["EURUSD"], "'EURUSD'"),
        (["EURUSD=lots"], "'EURUSD=lots'"),
        (["=5"], "'=5'"),
        (["EURUSD=nan"], "finite"),
        (["EURUSD=1", "EURUSD=2"], "EURUSD given twice"),
    ):
        with pytest.raises(CliError, match=why):
            parse_book(entries)


def h(step: str, **more: object) -> dict:
    return {
        "fromVersion": "1.4.2",
        "toVersion": "1.4.3",
        "tradingState": "ACTIVE",
        "startedAt": "T0",
        "step": step,
        **more,
    }


def test_the_steps_passed_and_the_one_under_way():
    [line] = handover_lines(h("HaltingOld", stepAt="T1"))
    assert "Standby ok -> [bold]HaltingOld[/] -> ActivatingNew -> Done since T1" in line
    done = handover_lines(h("Done", book={"EURUSD": 250000.0, "GBPUSD": 0.0}))
    assert "Done ok" in done[0] and done[1].strip() == "book handed over: EURUSD 250000"


def test_where_a_handover_ended_and_why():
    held = handover_lines(h("Held", reason="1.4.2: HALTED not acknowledged", incident="mr-handover-1"))
    assert "stratops handover release" in held[1] and "HALTED not acknowledged" in held[1]
    assert held[2].strip() == "incident mr-handover-1"
    assert "Aborted" in handover_lines(h("Aborted", reason="not Ready"))[1]
