"""A hand-written redis-py stream consumer with the scikit-learn pipeline: the peer of
``modelyard stream`` in benchmarks/streaming.py.

What a team writes without modelyard: a consumer group on the in stream, the fitted
pipeline, and for each message its prediction XADDed to the out stream, then the
message XACKed. Two modes:

- ``per-message``: ``pipeline.predict`` on a one-row DataFrame per message, one XADD and
  one XACK per message;
- ``batch``: up to ``--batch`` messages per XREADGROUP, one DataFrame and one
  ``pipeline.predict`` for all of them, the XADDs and XACKs in one pipelined round trip.

Run: python benchmarks/peers/redis_consumer.py --home HOME --ref house-prices:1
--redis redis://127.0.0.1:PORT/0 --mode batch (stops on SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal

import pandas as pd
import redis

from modelyard import api
from modelyard.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--ref", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--mode", choices=["per-message", "batch"], required=True)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    pipeline = api.load_model(args.ref, settings=Settings(home=args.home))
    client = redis.Redis.from_url(args.redis)
    with contextlib.suppress(redis.ResponseError):
        client.xgroup_create("in", "peers", id="0", mkstream=True)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    name = f"peer-{os.getpid()}"
    count = 100 if args.mode == "per-message" else args.batch
    while not stopping:
        reply = client.xreadgroup("peers", name, {"in": ">"}, count=count, block=100)
        if not reply:
            continue
        entries = reply[0][1]
        messages = [(entry, json.loads(fields[b"data"])) for entry, fields in entries]
        if args.mode == "per-message":
            for entry, message in messages:
                value = pipeline.predict(pd.DataFrame([message["row"]]))[0]
                document = {"id": message["id"], "prediction": float(value)}
                client.xadd("out", {"data": json.dumps(document)})
                client.xack("in", "peers", entry)
        else:
            frame = pd.DataFrame([message["row"] for _, message in messages])
            values = pipeline.predict(frame)
            with client.pipeline(transaction=False) as pipe:
                for (entry, message), value in zip(messages, values, strict=True):
                    document = {"id": message["id"], "prediction": float(value)}
                    pipe.xadd("out", {"data": json.dumps(document)})
                    pipe.xack("in", "peers", entry)
                pipe.execute()
    client.close()


if __name__ == "__main__":
    main()
