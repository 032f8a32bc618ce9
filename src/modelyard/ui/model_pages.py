"""The model pages: the models, a model's versions and history, a version, a diff.

=======================================  ================================================
route                                    page
=======================================  ================================================
``GET /models``                          every model, its latest version and aliases
``GET /models/{name}``                   its versions (gates, primary metric, aliases),
                                         the audit history, the diff form
``GET /models/{name}/versions/{n}``      metrics against baseline, gates, worst slices,
                                         charts of the evaluation rows, lineage,
                                         artifacts with checksums
``GET /models/{name}/diff?a=&b=``        the differential test between two versions
=======================================  ================================================

The charts read the version's ``evaluation`` artifact (checksum-verified): predicted
against actual and the error distribution for regressors; the confusion matrix and
(binary) the calibration curve for classifiers.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from modelyard.registry.records import ModelVersion
from modelyard.registry.registry import Registry
from modelyard.ui import charts
from modelyard.ui.pages import Pages

__all__ = ["router"]

_LINEAGE_PARTS = ("data", "code", "environment", "model", "training", "onnx", "checks")


def router(pages: Pages) -> APIRouter:
    """The model pages' routes (see the module docstring)."""
    from modelyard import api

    routes = APIRouter()
    settings = pages.settings

    @routes.get("/models", response_class=HTMLResponse)
    def model_list(request: Request) -> HTMLResponse:
        return pages.render(request, "models.html.j2", models=api.list_models(settings=settings))

    @routes.get("/models/{name}", response_class=HTMLResponse)
    def model_page(request: Request, name: str) -> HTMLResponse:
        with api.open_registry(settings) as registry:
            versions = registry.list_versions(name)
            audit = registry.audit_log(name, limit=100)
        return pages.render(
            request,
            "model.html.j2",
            name=name,
            versions=list(reversed(versions)),
            audit=audit,
            primary={v.version: _primary(v) for v in versions},
        )

    @routes.get("/models/{name}/versions/{number}", response_class=HTMLResponse)
    def version_page(request: Request, name: str, number: int) -> HTMLResponse:
        from modelyard.evaluation.report import EvaluationReport

        with api.open_registry(settings) as registry:
            version = registry.get_version(f"{name}:{number}")
            figures = _figures(registry, version)
        report = EvaluationReport.model_validate(_stored_report(version.report))
        lineage = {
            part: json.dumps(version.lineage[part], indent=2, sort_keys=True, default=str)
            for part in _LINEAGE_PARTS
            if version.lineage.get(part)
        }
        return pages.render(
            request,
            "version.html.j2",
            version=version,
            report=report,
            worst=report.worst_slices(),
            metric_names=list(report.metrics),
            figures=figures,
            lineage=lineage,
            spec=json.dumps(version.spec, indent=2, sort_keys=True, default=str),
        )

    @routes.get("/models/{name}/diff", response_class=HTMLResponse)
    async def diff_page(
        request: Request, name: str, a: int = Query(..., ge=1), b: int = Query(..., ge=1)
    ) -> HTMLResponse:
        old, new = f"{name}:{a}", f"{name}:{b}"
        result = await run_in_threadpool(lambda: api.diff(old, new, settings=settings))
        return pages.render(
            request, "diff.html.j2", name=name, old=old, new=new, diff=result, a=a, b=b
        )

    return routes


def _primary(version: ModelVersion) -> tuple[str, Any]:
    name = str(version.report.get("primary_metric", ""))
    return name, version.metrics.get(name)


def _stored_report(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored report with its undefined metrics (stored as null: JSON has no NaN)
    as NaN again, so it parses as an :class:`EvaluationReport`."""

    def metrics(values: dict[str, Any] | None) -> dict[str, float]:
        return {k: float("nan") if v is None else v for k, v in (values or {}).items()}

    report = {**stored, "metrics": metrics(stored.get("metrics"))}
    report["baseline_metrics"] = metrics(stored.get("baseline_metrics"))
    report["slices"] = [
        {**s, "metrics": metrics(s.get("metrics"))} for s in stored.get("slices", [])
    ]
    if stored.get("production"):
        report["production"] = {
            **stored["production"],
            "metrics": metrics(stored["production"].get("metrics")),
        }
    return report


def _figures(registry: Registry, version: ModelVersion) -> list[Markup]:
    """The charts of a version's evaluation rows (none when it has no such artifact)."""
    if "evaluation" not in version.artifacts:
        return []
    table = pd.read_parquet(io.BytesIO(registry.read_artifact(version, "evaluation")))
    if "target" not in table or "prediction" not in table:
        return []
    task = str(version.spec.get("task", "regression"))
    if task == "regression":
        actual = pd.to_numeric(table["target"], errors="coerce").to_numpy(dtype=np.float64)
        predicted = pd.to_numeric(table["prediction"], errors="coerce").to_numpy(np.float64)
        error = predicted - actual
        error = error[np.isfinite(error)]
        counts, edges = np.histogram(error, bins=20) if len(error) else (np.zeros(0), np.zeros(0))
        return [
            charts.scatter(actual.tolist(), predicted.tolist(), title="Predicted against actual"),
            charts.histogram(
                edges.tolist(),
                [int(count) for count in counts],
                title="Error distribution (predicted − actual)",
                xlabel="error",
            ),
        ]
    figures = [_confusion(table["target"].astype(str), table["prediction"].astype(str))]
    positive = version.report.get("positive_class")
    column = f"proba_{positive}"
    if task == "binary" and positive is not None and column in table:
        figures.append(_calibration(table[column], table["target"].astype(str) == str(positive)))
    return figures


def _confusion(actual: pd.Series, predicted: pd.Series) -> Markup:
    """The confusion matrix as an HTML table (rows: actual, columns: predicted)."""
    labels = sorted(set(actual) | set(predicted))
    matrix = pd.crosstab(actual, predicted).reindex(index=labels, columns=labels, fill_value=0)
    top = int(matrix.to_numpy().max()) or 1
    head = "".join(f"<th>{Markup.escape(label)}</th>" for label in labels)
    body = []
    for label, row in matrix.iterrows():
        cells = "".join(
            f'<td class="heat{min(int(4 * int(count) / top), 4)}">{int(count):,}</td>'
            for count in row
        )
        body.append(f"<tr><th>{Markup.escape(label)}</th>{cells}</tr>")
    return Markup(
        '<table class="confusion"><caption>Confusion matrix (rows: actual, columns: '
        f"predicted)</caption><tr><th></th>{head}</tr>{''.join(body)}</table>"
    )


def _calibration(proba: pd.Series, positive: pd.Series) -> Markup:
    values = proba.to_numpy(dtype=np.float64)
    hits = positive.to_numpy(dtype=bool)
    bins = np.clip((values * 10).astype(np.int64), 0, 9)
    predicted, observed, counts = [], [], []
    for index in range(10):
        inside = bins == index
        counts.append(int(inside.sum()))
        predicted.append(float(values[inside].mean()) if inside.any() else float("nan"))
        observed.append(float(hits[inside].mean()) if inside.any() else float("nan"))
    return charts.calibration(predicted, observed, counts, title="Calibration")
