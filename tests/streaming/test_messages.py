"""Message parsing and model events, without a broker."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from modelyard import api
from modelyard.errors import ModelyardError
from modelyard.settings import Settings
from modelyard.streaming.messages import BadMessage, parse_message
from modelyard.streaming.transport import parse_events, transport_class

if TYPE_CHECKING:
    from _yard import Yard


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"", 400, "the message is empty"),
        (b"{nope", 400, "not valid JSON"),
        (b"[1, 2]", 422, "expected a JSON object"),
        (b'{"row": {}}', 422, 'needs an "id"'),
        (b'{"id": true, "row": {}}', 422, 'needs an "id"'),
        (b'{"id": "", "row": {}}', 422, "1 to 200 characters"),
        (b'{"id": "a"}', 422, 'give "row"'),
        (b'{"id": "a", "row": {}, "rows": []}', 422, "not 'row' and 'rows'"),
        (b'{"id": "a", "row": [1]}', 422, 'expected "row" to be an object'),
    ],
)
def test_bad_messages_say_why(body: bytes, status: int, words: str) -> None:
    with pytest.raises(BadMessage, match=words) as caught:
        parse_message(body)
    assert caught.value.status == status
    assert caught.value.detail[0]["msg"] == caught.value.message


def test_messages_in_each_shape_parse() -> None:
    one = parse_message(b'{"id": 7, "row": {"size": 1}}')
    assert (one.id, one.single) == ("7", True)
    split = parse_message(b'{"id": "s", "columns": ["size"], "data": [[NaN]]}')
    assert split.single is False and split.payload["columns"] == ["size"]
    assert parse_message(b'{"id": "r", "rows": [{"size": 1}]}').single is False


def test_control_stream_bodies_that_are_not_events_are_skipped() -> None:
    bodies = [b'{"model": "houses"}', b"junk", None, b"[1]"]
    assert parse_events(bodies) == [{"model": "houses"}]


def test_an_unknown_broker_scheme_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ModelyardError, match=r"amqp://x.*redis://.*kafka://.*nats://"):
        transport_class("amqp://x")


def test_a_promotion_succeeds_when_its_event_cannot_be_published(
    yard: Yard, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(home=yard.settings.home, events_url="redis://127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING, logger="modelyard.streaming.events"):
        change = api.promote("houses:1", alias="events-test", reason="test", settings=settings)
    assert change.to_version == 1
    assert "could not be published" in caplog.text and "next registry poll" in caplog.text


def test_the_stream_process_owns_the_serving_process_settings() -> None:
    from modelyard.serving.process import SERVE_DEFAULTS
    from modelyard.streaming import StreamConfig

    config = StreamConfig(
        model="houses", broker="redis://127.0.0.1:1/0", in_stream="i", out_stream="o"
    )
    library = config.serve_config()
    assert library.gc_freeze is None and library.switch_interval_ms is None  # left alone
    process = config.for_stream_process().serve_config()
    assert process.gc_freeze is SERVE_DEFAULTS.gc_freeze is True
    assert SERVE_DEFAULTS.switch_interval is not None
    assert process.switch_interval_ms == pytest.approx(SERVE_DEFAULTS.switch_interval * 1000)
    chosen = config.model_copy(update={"gc_freeze": False, "switch_interval_ms": 0.0})
    kept = chosen.for_stream_process()  # what a user set is kept
    assert kept.gc_freeze is False and kept.switch_interval_ms == 0.0
