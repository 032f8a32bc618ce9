"""One call of modelyard's ONNX runtime on 1 row, timed in a fresh process.

Usage: ``python runtime_call.py BODY REF`` with BODY an MLflow-style JSON body of one
row (``{"dataframe_records": [...]}``) and REF the version (``house-prices:1``); prints
one JSON line: the runtime's name, why it was chosen, the median microseconds per call
and the prediction.

The serving benchmark runs it before each of its runs, pinned to the servers' core with
their thread settings, so the latency goal's reference (floor + one runtime call) is
measured as often as the servers and in a process as fresh as theirs: timed inside the
benchmark's own long-lived process (pandas, the pipeline and the bodies loaded) the same
call came out up to 1.6x slower than in a fresh one.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from harness import median_call_us

from modelyard.api import open_registry
from modelyard.contract import InputContract, decode_records
from modelyard.runtime import select_runtime


def main(body: str, ref: str) -> None:
    with open(body, encoding="utf-8") as handle:
        records = json.load(handle)["dataframe_records"][:1]
    with open_registry() as registry:
        version = registry.get_version(ref)
        runtime, reason = select_runtime(registry, version, preference="onnx")
    # Decoded by the contract beforehand, as the server decodes a request: decoding is
    # the server's work, not the runtime call's.
    contract = InputContract.from_version(version, max_rows=10)
    columns, _ = decode_records(records, contract)
    print(
        json.dumps(
            {
                "runtime": runtime.name,
                "note": reason,
                "runtime_call_us": median_call_us(lambda: runtime.predict(columns, 1)),
                "runtime_prediction": float(np.ravel(runtime.predict(columns, 1).values)[0]),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
