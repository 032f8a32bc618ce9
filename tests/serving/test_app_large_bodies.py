"""Bodies over 256 KiB, decoded in the server's decode process: every protocol answers
them exactly as it answers the same rows in a small body (predictions, and errors with
their status and messages), and so do feedback, rewards, clicks and admin loads; a
decode process killed mid-body fails that request alone, with a 503 the client may
retry; and none is left running once the server stops."""

from __future__ import annotations

import multiprocessing
import os
import signal
import struct
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import orjson
import pytest

from modelyard.serving.protocols import OFFLOAD_BYTES

if TYPE_CHECKING:
    from _yard import Yard
    from conftest import LiveServer, StartServer

pytestmark = pytest.mark.e2e

ROWS = [
    {"size": 40.0 + (i * 7) % 200, "rooms": 1 + i % 6, "town": ("alpha", "beta", "delta")[i % 3]}
    for i in range(3_000)
]
# Bad values early and late, and a row without a column: the problems each path lists.
BAD_ROWS = [*ROWS[:7], {**ROWS[7], "size": "x"}, *ROWS[8:2_900], {"size": 80.0, "rooms": 2}]
JSON = {"content-type": "application/json"}
ADMIN_KEY = "large-bodies-admin"
CSV = {"content-type": "text/csv"}


def _json(payload: Any, large: bool) -> bytes:
    """``payload`` as JSON, padded with whitespace past 256 KiB when ``large``."""
    body = orjson.dumps(payload)
    assert len(body) <= OFFLOAD_BYTES, "the small body must stay in process"
    return body + (b" " * (OFFLOAD_BYTES + 1 - len(body)) if large else b"")


def _csv(rows: list[dict[str, Any]], large: bool) -> bytes:
    """CSV with an extra column the model ignores: wide when ``large``."""
    note = "n" * 100 if large else ""
    lines = [f"{r['size']},{r.get('rooms', '')},{r.get('town', '')},{note}\n" for r in rows]
    body = ("size,rooms,town,note\n" + "".join(lines)).encode()
    assert (len(body) > OFFLOAD_BYTES) == large
    return body


def _v2(rows: list[dict[str, Any]], large: bool) -> tuple[bytes, dict[str, str]]:
    """A V2 request with binary tensors (its JSON header padded when ``large``)."""
    size = np.array([r.get("size") for r in rows], dtype="<f8").tobytes()
    rooms = np.array([r.get("rooms", 0) for r in rows], dtype="<i8").tobytes()
    town = b"".join(struct.pack("<I", len(r["town"])) + r["town"].encode() for r in rows)
    tensors = [("size", "FP64", size), ("rooms", "INT64", rooms), ("town", "BYTES", town)]
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": [len(rows)],
                    "datatype": datatype,
                    "parameters": {"binary_data_size": len(data)},
                }
                for name, datatype, data in tensors
            ]
        }
    )
    header += b" " * (OFFLOAD_BYTES + 1 if large else 0)
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }
    return header + b"".join(data for _, _, data in tensors), headers


def _cases(rows: list[dict[str, Any]], large: bool) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    """(path, body, headers) of the same rows in every protocol's forms."""
    names = ["size", "rooms", "town"]
    split = {"columns": names, "data": [[r.get(n) for n in names] for r in rows]}
    columnar = {n: [r.get(n) for r in rows] for n in names}
    v2_json = {
        "inputs": [
            {"name": n, "shape": [len(rows)], "datatype": t, "data": [r.get(n) for r in rows]}
            for n, t in (("size", "FP64"), ("rooms", "INT64"), ("town", "BYTES"))
        ]
    }
    v1 = "/v1/models/houses/predict"
    return {
        "v1-rows": (v1, _json({"rows": rows}, large), JSON),
        "v1-split": (v1, _json(split, large), JSON),
        "v1-rank": ("/v1/models/houses/rank", _json({"rows": rows}, large), JSON),
        "mlflow-records": ("/invocations", _json({"dataframe_records": rows}, large), JSON),
        "mlflow-split": ("/invocations", _json({"dataframe_split": split}, large), JSON),
        "mlflow-inputs": ("/invocations", _json({"inputs": columnar}, large), JSON),
        "mlflow-csv": ("/invocations", _csv(rows, large), CSV),
        "v2-json": ("/v2/models/houses/infer", _json(v2_json, large), JSON),
        # binary tensors cannot carry the bad rows' text and gaps: valid rows only
        **({"v2-binary": ("/v2/models/houses/infer", *_v2(rows, large))} if rows is ROWS else {}),
    }


def _answer(response: httpx.Response) -> Any:
    """What must not depend on the body's size: status and the reply, ids left out."""
    if response.headers["content-type"] != "application/json":
        return response.status_code, response.content[-2_000:]
    reply = response.json()
    for key in ("request_id", "id"):
        if isinstance(reply, dict):
            reply.pop(key, None)
    return response.status_code, reply


@pytest.fixture(scope="module")
def server(module_servers: StartServer, yard: Yard) -> LiveServer:
    return module_servers(yard.settings, models=["houses"], admin_key=ADMIN_KEY)


@pytest.mark.parametrize("rows", [ROWS, BAD_ROWS], ids=["valid", "invalid"])
def test_a_large_body_is_answered_as_the_same_rows_in_a_small_one(
    server: LiveServer, rows: list[dict[str, Any]]
) -> None:
    small, large = _cases(rows, large=False), _cases(rows, large=True)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for name, (path, body, headers) in small.items():
            expected = _answer(client.post(path, content=body, headers=headers))
            big_path, big_body, big_headers = large[name]
            assert len(big_body) > OFFLOAD_BYTES
            found = _answer(client.post(big_path, content=big_body, headers=big_headers))
            assert found == expected, name
            assert found[0] == (200 if rows is ROWS else {"/v1": 422}.get(path[:3], 400)), name
    decoding = server.app.state.decoding
    assert decoding.pid is not None  # the large bodies went to the decode process


# Content each of the other JSON endpoints refuses, as (path, body, headers): broken
# shapes (more problems than a 422 names in its message), then a body that is not JSON.
_BROKEN_ITEM = {"request_id": "", "label": [1], "row": -1, "note": "x"}
OTHER_BODIES: list[tuple[str, Any, dict[str, str]]] = [
    ("/v1/feedback", {"model": "houses", "items": [_BROKEN_ITEM] * 40, "more": 1}, JSON),
    ("/v1/feedback", {"model": "houses", "items": []}, JSON),
    ("/v1/models/houses/reward", {"items": [{"request_id": "r", "reward": "x"}], "x": 1}, JSON),
    ("/v1/models/houses/rank/clicks", {"request_id": "", "clicked": ["a", 1.5, 2]}, JSON),
    ("/v1/admin/models/houses/load", {"ref": 3, "x": [1, 2]}, JSON | {"x-api-key": ADMIN_KEY}),
    ("/v1/admin/models/houses/load", b'{"ref": "houses:1",}', JSON | {"x-api-key": ADMIN_KEY}),
]


def test_other_large_bodies_are_answered_as_the_same_content_in_a_small_one(
    server: LiveServer,
) -> None:
    """Feedback, rewards, clicks and admin loads over 256 KiB are checked in the decode
    process: the same status and error body as the same content in a small body."""
    decoding = server.app.state.decoding
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for path, content, headers in OTHER_BODIES:
            small = content if isinstance(content, bytes) else orjson.dumps(content)
            large = small + b" " * (OFFLOAD_BYTES + 1 - len(small))
            expected = client.post(path, content=small, headers=headers)
            handled = decoding.handled
            found = client.post(path, content=large, headers=headers)
            assert decoding.handled == handled + 1  # checked in the decode process
            assert expected.status_code in (400, 422), expected.text[:300]
            assert (found.status_code, found.json()) == (expected.status_code, expected.json())
    detail = expected.json()["detail"]
    assert detail[0]["loc"] == ["body"] and "not valid JSON" in detail[0]["msg"]


def _slow_body() -> bytes:
    """1.2 million distinct keys in one row: half a second or more of parsing."""
    return b'{"rows": [{' + b",".join(b'"k%d":1' % i for i in range(1_200_000)) + b"}]}"


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_a_killed_decode_process_fails_only_its_request(
    start_server: StartServer, yard: Yard
) -> None:
    server = start_server(yard.settings, models=["houses"])
    path, body, headers = _cases(ROWS, large=True)["v1-rows"]
    with httpx.Client(base_url=server.url, timeout=120) as client:
        assert client.post(path, content=body, headers=headers).status_code == 200
        child = server.app.state.decoding.pid
        assert child is not None
        before = _cpu_ticks(child)
        answers: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: answers.append(
                httpx.post(server.url + path, content=_slow_body(), headers=JSON, timeout=120)
            )
        )
        sender.start()
        deadline = time.monotonic() + 60
        while _cpu_ticks(child) < before + 10:  # 100 ms into the body
            assert sender.is_alive() and time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(child, signal.SIGKILL)
        sender.join()
        (killed,) = answers
        assert killed.status_code == 503, killed.text
        assert killed.headers["retry-after"] == "1"
        assert "decode process" in killed.json()["detail"][0]["msg"]
        again = client.post(path, content=body, headers=headers)  # a new decode process
        assert again.status_code == 200
        replaced = server.app.state.decoding.pid
        assert replaced not in (None, child)
        assert client.get("/healthz").status_code == 200
    server.stop()
    alive = [process.pid for process in multiprocessing.active_children()]
    assert replaced not in alive
    assert not Path(f"/proc/{replaced}").exists()
