"""One drift run of a peer of ``benchmarks/monitoring.py``, in the peers' own venv.

Usage: ``python monitoring_peer.py evidently|nannyml REFERENCE.parquet CURRENT.parquet
COLUMNS.json``. Reads both frames, runs the peer's univariate drift over every column,
and prints one JSON line: seconds (reading included, imports not), peak resident memory (MB) and the
columns flagged. Imports neither modelyard nor its lock (this venv has pandas < 3).

- Evidently 0.7: ``Report([DataDriftPreset()])``; its per-column ``ValueDrift`` methods
  are distances above 1,000 rows (Wasserstein normed for numbers, Jensen-Shannon for
  categories), flagged at or above their threshold (0.1).
- NannyML 0.13: ``UnivariateDriftCalculator`` with its default methods (Jensen-Shannon)
  and thresholds (from the variability of the reference's chunks), ten chunks on each
  side (one chunk gives the reference no variability: every column alerts); a column
  is flagged when any analysis chunk alerts.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import warnings
from pathlib import Path

import pandas as pd


def evidently(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]) -> list[str]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k != "categorical"],
        categorical_columns=[c for c, k in kinds.items() if k == "categorical"],
    )
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        method, value, threshold = config["method"], metric["value"], config["threshold"]
        # p-value tests flag below their threshold, distances at or above it.
        is_test = "p_value" in method or "test" in method.lower()
        if (value < threshold) if is_test else (value >= threshold):
            flagged.append(config["column"])
    return flagged


def nannyml(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]) -> list[str]:
    import nannyml as nml

    columns = list(kinds)
    calculator = nml.UnivariateDriftCalculator(
        column_names=columns,
        treat_as_categorical=[c for c, k in kinds.items() if k == "categorical"],
        chunk_number=10,
    )
    calculator.fit(reference)
    results = calculator.calculate(current).filter(period="analysis").to_df()
    flagged = []
    for column in columns:
        alerts = [key for key in results.columns if key[0] == column and key[-1] == "alert"]
        if any(bool(results[key].any()) for key in alerts):
            flagged.append(column)
    return flagged


def main() -> None:
    tool, reference_path, current_path, columns_path = sys.argv[1:5]
    kinds = json.loads(Path(columns_path).read_text(encoding="utf-8"))
    warnings.simplefilter("ignore")  # the peers' own deprecation and chunking warnings
    # Imported before the clock starts, as modelyard's are.
    importlib.import_module("evidently.presets" if tool == "evidently" else "nannyml")
    started = time.perf_counter()
    reference = pd.read_parquet(reference_path, columns=list(kinds))
    current = pd.read_parquet(current_path, columns=list(kinds))
    flagged = {"evidently": evidently, "nannyml": nannyml}[tool](reference, current, kinds)
    seconds = time.perf_counter() - started
    peak = next(
        int(line.split()[1]) / 1024  # VmHWM: the peak resident set, fresh at exec
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines()
        if line.startswith("VmHWM:")
    )
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "flagged": sorted(flagged)}))


if __name__ == "__main__":
    main()
