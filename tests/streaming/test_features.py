"""The consumer's streaming features on each message shape, without a broker."""

from __future__ import annotations

import pytest

from modelyard.streaming.features import StreamWindows
from modelyard.streaming.messages import BadMessage, parse_message

SPEC = {
    "data": {"timestamp_column": "at"},
    "features": {
        "windows": [
            {"name": "n_1h", "key": "driver", "agg": "count", "minutes": 60},
            {"name": "fare_mean", "key": "driver", "agg": "mean", "over": "fare", "events": 2},
        ]
    },
}


def test_each_shape_gets_the_window_columns_from_the_rows_before_it() -> None:
    windows = StreamWindows()
    state = windows.state(SPEC)
    assert state is not None and windows.state(SPEC) is state  # one state per definition
    assert windows.state({"features": {}}) is None
    one = parse_message(
        b'{"id": 1, "row": {"at": "2026-01-01T10:00:00Z", "driver": "a", "fare": 10}}'
    )
    rows = parse_message(
        b'{"id": 2, "rows": [{"at": "2026-01-01T10:10:00Z", "driver": "a", "fare": 20},'
        b' {"at": "2026-01-01T10:20:00Z", "driver": "b", "fare": 5}]}'
    )
    split = parse_message(
        b'{"id": 3, "columns": ["at", "driver", "fare", "n_1h"],'
        b' "data": [["2026-01-01T10:30:00Z", "a", 30, 99]]}'
    )
    assert windows.enrich(one, state).payload["row"] | {} == {
        "at": "2026-01-01T10:00:00Z", "driver": "a", "fare": 10, "n_1h": 0.0, "fare_mean": None,
    }  # fmt: skip
    got = windows.enrich(rows, state).payload["rows"]
    assert [(r["n_1h"], r["fare_mean"]) for r in got] == [(1.0, 10.0), (0.0, None)]
    (last,) = windows.enrich(split, state).payload["rows"]
    assert (last["n_1h"], last["fare_mean"]) == (2.0, 15.0)  # the sent 99 is replaced


def test_a_row_without_the_key_is_a_dead_letter_with_the_reason() -> None:
    windows = StreamWindows()
    state = windows.state(SPEC)
    assert state is not None
    request = parse_message(b'{"id": "x", "row": {"at": "2026-01-01T10:00:00Z", "fare": 1}}')
    with pytest.raises(BadMessage, match="column 'driver' is missing") as caught:
        windows.enrich(request, state)
    assert caught.value.id == "x" and caught.value.detail[0]["type"] == "window"
