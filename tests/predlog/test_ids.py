"""Request ids: unique and dated; feedback looked up in memory and in the segments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from modelyard.errors import DataValidationError
from modelyard.predlog import FeedbackItem, PredictionLog
from modelyard.predlog.ids import RequestIds, issued_at

from .conftest import LogFn


def test_ids_are_unique_across_issuers_and_carry_their_issue_time() -> None:
    before = datetime.now(UTC)
    issued = [ids.new() for ids in (RequestIds(), RequestIds()) for _ in range(1000)]
    assert len(set(issued)) == 2000
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in issued)
    moment = issued_at(issued[0])
    assert moment is not None
    assert before - timedelta(seconds=1) <= moment <= datetime.now(UTC) + timedelta(seconds=1)
    assert issued_at("job-42") is None and issued_at("g" * 32) is None
    assert issued_at("f" * 32) is None  # past year 9999: made up, not issued


def test_feedback_is_known_only_for_logged_pairs_in_memory_and_on_disk(
    predlog: PredictionLog, log_regression: LogFn
) -> None:
    issued = RequestIds()
    served, batch = issued.new(), "job-7"
    log_regression(served, rows=3, received_at=datetime.now(UTC))
    log_regression(batch, rows=2, row_numbers=np.array([40, 41]))
    asked = [
        FeedbackItem(served, 1.0, 0),
        FeedbackItem(served, 1.0, 2),
        FeedbackItem(served, 1.0, 3),  # the request had 3 rows
        FeedbackItem(batch, 1.0, 41),
        FeedbackItem(batch, 1.0, 0),  # a batch row is its input row number
        FeedbackItem(issued.new(), 1.0, 0),  # issued, never predicted
        FeedbackItem("f" * 32, 1.0, 0),  # looks issued, dated past year 9999
        FeedbackItem("0" * 32, 1.0, 0),  # looks issued, dated 1970
    ]
    in_memory = predlog.unknown_feedback("house-prices", asked)
    predlog.flush()
    on_disk = predlog.unknown_feedback("house-prices", asked)
    assert in_memory == on_disk == [2, 4, 5, 6, 7]
    assert predlog.unknown_feedback("other-model", asked[:1]) == [0]
    with pytest.raises(DataValidationError, match="request_id"):
        predlog.unknown_feedback("house-prices", [FeedbackItem("\ud800", 1.0, 0)])
