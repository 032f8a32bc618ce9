"""The web export in a real headless Chromium, served by a real static file server.

Three trained versions (a regressor, a binary and a multiclass classifier, the last
refusing unseen categories and out-of-range numbers) are exported with
``modelyard.api.export_edge``, which measures their parity in Chromium itself; then the
tests open each page with Selenium and check ``window.modelyard.predict`` against the
scikit-learn pipeline, the form and the CSV input by clicks and file input, the
contract's messages against the Python contract's, and that no request leaves the
folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _browser import chromium, open_page, require_browser, run_async, static_server

from _contract_cases import ROW, SPEC
from _projects import classification_frame, write_spec
from modelyard import api
from modelyard.contract import InputContract, RequestValidationError, decode_records
from modelyard.contract.serial import contract_from_dict, contract_to_dict
from modelyard.export.web import json_records
from modelyard.models.fit import predict
from modelyard.registry.readers import evaluation_frame, load_version_pipeline
from modelyard.serving.protocols._parse import decode_csv
from modelyard.settings import Settings

pytestmark = pytest.mark.e2e

MODELS = {"houses": "houses:1", "churn": "churn:1", "tiers": "tiers:1"}


@pytest.fixture(scope="module")
def edge_yard(yard: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """``yard``'s versions plus ``tiers:1``: multiclass, some plans missing, unseen
    categories and numbers outside the training range refused."""
    require_browser()
    base = tmp_path_factory.mktemp("edge")
    settings = Settings(home=base / "home")
    shutil.copytree(yard.home, settings.home)
    folder = base / "tiers"
    (folder / "data").mkdir(parents=True)
    frame = classification_frame(rows=300, classes=3, seed=4)
    frame.loc[frame.index % 17 == 3, "plan"] = None  # missing categories, fed as such
    frame.to_csv(folder / "data" / "customers.csv", index=False)
    write_spec(
        folder,
        {
            "name": "tiers",
            "task": "multiclass",
            "target": "label",
            "seed": 2,
            "data": {
                "source": {"path": "data/customers.csv"},
                "id_columns": ["customer_id"],
                "out_of_range": "refuse",
                "range_tolerance": 0.1,
            },
            "features": {
                "categorical": ["plan", "region"],
                "encode": {"unknown": "error"},
                "drop": ["signup_date"],
            },
            "model": {
                "estimator": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 500},
            },
        },
    )
    api.train(folder, settings=settings, onnx=False)
    return settings


@pytest.fixture(scope="module")
def site(edge_yard: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three web exports side by side, and ``spec/`` and ``ranged/``: the houses page
    with the shared test contract (``_contract_cases.SPEC``) and a variant as contract."""
    root = tmp_path_factory.mktemp("site")
    for folder, ref in MODELS.items():
        result = api.export_edge(ref, target="web", output=root / folder, settings=edge_yard)
        assert result.parity["browser"] is not None and result.ok, result.record()
    document = json.loads((root / "houses" / "contract.json").read_text())
    for folder, contract in CONTRACTS.items():
        shutil.copytree(root / "houses", root / folder)
        document["contract"] = contract_to_dict(contract)
        (root / folder / "contract.json").write_text(json.dumps(document))
    return root


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    with static_server(site) as url:
        yield url


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_browser()
    with chromium(tmp_path_factory.mktemp("profile")) as browser:
        yield browser


def _reference(settings: Settings, ref: str) -> tuple[pd.DataFrame, Any, InputContract]:
    with api.open_registry(settings) as registry:
        version = registry.get_version(ref)
        rows = evaluation_frame(registry, version)
        pipeline = load_version_pipeline(registry, version)
        return rows, predict(pipeline, rows), InputContract.from_version(version)


def _recorded(settings: Settings, ref: str) -> dict[str, Any]:
    with api.open_registry(settings) as registry:
        return dict(registry.get_version(ref).artifacts["web"].extra)


@pytest.mark.parametrize("folder", list(MODELS))
def test_predict_in_the_browser_matches_the_pipeline(
    folder: str, edge_yard: Settings, base_url: str, driver: Any
) -> None:
    ref = MODELS[folder]
    rows, expected, contract = _reference(edge_yard, ref)
    open_page(driver, f"{base_url}{folder}/index.html")
    got = run_async(
        driver,
        "return await window.modelyard.predict(args[0]);",
        json_records(rows, contract.names),
    )
    record = _recorded(edge_yard, ref)
    assert record["ok"] and record["parity"]["browser"]["ok"]
    tolerance = record["parity"]["browser"]["tolerance"]
    if folder == "houses":
        assert "probabilities" not in got
        np.testing.assert_allclose(
            got["predictions"], expected.values, rtol=tolerance["rtol"], atol=tolerance["atol"]
        )
        return
    assert got["classes"] == list(expected.classes)
    assert got["predictions"] == list(expected.values)
    np.testing.assert_allclose(got["probabilities"], expected.proba, atol=tolerance["proba_atol"])


def test_missing_categories_in_the_browser_and_the_ort_file(
    edge_yard: Settings, site: Path, tmp_path: Path
) -> None:
    """ONNX Runtime's string tensors stop at a NUL, so the edge graphs take a missing
    category as another text; the browser (measured at export) and the ORT file agree."""
    rows, _, _ = _reference(edge_yard, "tiers:1")
    assert rows["plan"].isna().any()
    document = json.loads((site / "tiers" / "contract.json").read_text())
    assert "\x00" not in document["model"]["missing_category"]
    assert _recorded(edge_yard, "tiers:1")["parity"]["browser"]["ok"]
    result = api.export_edge("tiers:1", target="mobile", output=tmp_path / "m", settings=edge_yard)
    assert result.ok and result.parity["ort"] is not None and result.parity["ort"].rows == len(rows)


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def _page_problems(driver: Any) -> list[str]:
    items = driver.find_elements("css selector", "#problem-list li")
    return [item.text for item in items]


def _wait_for(driver: Any, selector: str) -> None:
    """Wait until the page (which reads files and predicts asynchronously) shows ``selector``."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 60).until(lambda d: d.find_elements("css selector", selector))


def _table(driver: Any) -> list[list[str]]:
    lines = driver.find_elements("css selector", "#predictions tbody tr")
    return [[cell.text for cell in line.find_elements("tag name", "td")] for line in lines]


def test_form_predicts_one_row_by_clicks(edge_yard: Settings, base_url: str, driver: Any) -> None:
    from selenium.webdriver.support.ui import Select

    rows, expected, contract = _reference(edge_yard, "churn:1")
    open_page(driver, f"{base_url}churn/index.html")
    # One field per input, from the contract: its kind, categories as choices, the
    # required ones marked.
    labels = driver.find_elements("css selector", "#row-form label")
    assert [label.get_attribute("for") for label in labels] == [
        f"field-{name}" for name in contract.names
    ]
    assert {c.kind for c in contract.columns} >= {"numeric", "categorical", "datetime"}
    for column, label in zip(contract.columns, labels, strict=True):
        field = driver.find_element("id", f"field-{column.name}")
        assert label.find_element("css selector", ".kind").text == column.kind
        marks = label.find_elements("css selector", ".required")
        assert bool(marks) == (not column.nullable), column.name
        assert (field.get_attribute("aria-required") == "true") == (not column.nullable)
        if column.kind == "categorical" and column.categories:
            choices = [o.get_attribute("value") for o in Select(field).options]
            assert choices[0] == "" and sorted(choices[1:]) == sorted(column.categories)
        else:
            assert field.tag_name == "input"
            numeric = field.get_attribute("inputmode") == "decimal"
            assert numeric == (column.kind == "numeric"), column.name
    assert any(not column.nullable for column in contract.columns)
    assert any(column.categories for column in contract.columns)
    row = rows.iloc[0]
    for column in contract.columns:
        field = driver.find_element("id", f"field-{column.name}")
        value = row[column.name]
        text = "" if pd.isna(value) else str(value)
        if field.tag_name == "select":
            Select(field).select_by_value(text)
        else:
            field.clear()
            field.send_keys(text)
    driver.find_element("id", "predict-row").click()
    _wait_for(driver, "#predictions tbody tr")
    [line] = _table(driver)
    assert line[1] == str(expected.values[0])
    assert [float(p) for p in line[2:]] == pytest.approx(list(expected.proba[0]), abs=1e-4)
    assert not _page_problems(driver)

    # A required input left empty: the contract's message, as the server words it.
    required = next(c for c in contract.columns if not c.nullable and c.kind == "categorical")
    Select(driver.find_element("id", f"field-{required.name}")).select_by_value("")
    driver.find_element("id", "predict-row").click()
    _wait_for(driver, "#problem-list li")
    texts = [
        "" if pd.isna(row[c.name]) or c.name == required.name else str(row[c.name])
        for c in contract.columns
    ]
    python = _csv_messages(_csv(pd.DataFrame([texts], columns=contract.names)), contract)
    assert (
        _page_problems(driver)
        == python
        == [
            f"row 0, column {required.name!r}: null, but training had no missing values here; "
            "send a value"
        ]
    )
    assert _table(driver) == []


def _csv_messages(text: str, contract: InputContract) -> list[str]:
    with pytest.raises(RequestValidationError) as caught:
        decode_csv(text, contract)
    return [problem.message for problem in caught.value.problems]


def test_csv_by_file_input_and_by_drop(
    edge_yard: Settings, base_url: str, driver: Any, tmp_path: Path
) -> None:
    rows, expected, contract = _reference(edge_yard, "tiers:1")
    open_page(driver, f"{base_url}tiers/index.html")
    good = tmp_path / "rows.csv"
    good.write_text(_csv(rows[contract.names].head(6)))
    driver.find_element("id", "csv-file").send_keys(str(good))
    _wait_for(driver, "#predictions tbody tr")
    table = _table(driver)
    assert [line[1] for line in table] == [str(label) for label in expected.values[:6]]

    # Bad rows: a wrong type, an unseen category (refused by this spec), a required
    # value missing and a number far outside the training range.
    bad = rows[contract.names].head(4).astype(object)
    bad.loc[0, "tenure_months"] = "twelve"
    bad.loc[1, "plan"] = "platinum"
    bad.loc[2, "region"] = None
    bad.loc[3, "support_tickets"] = 10_000
    text = _csv(bad)
    # The drop zone, with a real File in a real drop event.
    driver.execute_script(
        "const data = new DataTransfer();"
        "data.items.add(new File([arguments[0]], 'bad.csv', {type: 'text/csv'}));"
        "document.getElementById('drop-zone').dispatchEvent("
        "new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));",
        text,
    )
    _wait_for(driver, "#problem-list li")
    expected_messages = _csv_messages(text, contract)
    assert _page_problems(driver) == expected_messages
    kinds = {
        item.get_attribute("data-kind")
        for item in driver.find_elements("css selector", "#problem-list li")
    }
    assert {"wrong_type", "unseen_category", "out_of_range"} <= kinds
    assert _table(driver) == []


# -- the contract's rules, in Python and in the page -------------------------------------

_WITHOUT_SIZE = {key: value for key, value in ROW.items() if key != "size"}
RECORD_CASES: list[Any] = (
    [
        [ROW],
        [{**ROW, "size": "12.5"}],
        [{**ROW, "size": "abc"}],
        [{**ROW, "size": True}],
        [{**ROW, "size": None}, {**ROW, "rooms": None}],
        [{**ROW, "rooms": 2.5, "zone": 2.5}],
        [{**ROW, "town": "gamma"}],
        [{**ROW, "town": 5}],
        [{**ROW, "town": True}],
        [{**ROW, "town": {"a": 1}}, {**ROW, "town": [1, 2]}],
        [{**ROW, "town": "caf\u00e9 \u200b", "zone": 77}],
        [{**ROW, "town": "x" * 5000}],
        [{**ROW, "town": "\ud800"}],
        [{**ROW, "zone": 20.0}, {**ROW, "zone": 1e20}, {**ROW, "zone": 1e22}, {**ROW, "zone": 0.1}],
        [{**ROW, "garage": 1}, {**ROW, "garage": "yes"}, {**ROW, "garage": False}],
    ]
    + [
        [{**ROW, "sold": value}]
        for value in [
            "2024-13-01",
            "31/05/2024",
            20240531,
            "1500-01-01",
            "2024-05-31 08:00",
            "2024-02-30",
            "2024-05-31T12:00:00.123456789+05:30",
        ]
    ]
    + [
        [_WITHOUT_SIZE],
        [{**_WITHOUT_SIZE, "sise": 3.0}],
        [ROW, _WITHOUT_SIZE],
        [],
        "rows",
        [1, ROW],
        [{**ROW, "size": "x"}] * 60,
        [ROW] * 301,
    ]
)

RANGED = dataclasses.replace(
    SPEC,
    columns=(
        dataclasses.replace(SPEC.columns[0], min=40.0, max=250.0),
        dataclasses.replace(SPEC.columns[1], min=1.0, max=6.0),
        *SPEC.columns[2:],
    ),
    ranges="refuse",
    range_tolerance=0.1,
)
CONTRACTS = {"spec": SPEC, "ranged": RANGED}
RANGE_CASES: list[Any] = [
    [{**ROW, "size": 300.0}, {**ROW, "rooms": -1}, {**ROW, "size": 1e-7, "rooms": 123456789}],
    [{**ROW, "size": 271.0}],
]

CSV_CASES = [
    "size,rooms,town,zone,garage,sold\n120.5,3,alpha,20,true,2024-05-31\n",
    "size,rooms,town,zone,garage,sold\nabc,,beta,20.0,TRUE,2024-05-31\n,1,,2.5,no,\n",
    'sold,garage,zone,town,rooms,size\n2024-05-31,False,60,"al,pha",3,1e3\n',
    "size,rooms,town,zone,garage,sold\n1,2,alpha\n",
    "size,size,town\n1,2,alpha\n",
    "sise,rooms,town,zone,garage,sold\n1,2,alpha,20,true,2024-05-31\n",
    "",
    "size,rooms,town,zone,garage,sold\n",
    '\ufeffsize,rooms,town,zone,garage,sold\r\n120.5,3,"a ""b""",20,true,2024-05-31\r\n\r\n',
    'size,rooms,town,zone,garage,sold\n1,2,"alpha\n',
    'size,rooms,town,zone,garage,sold\r120.5,3,al"pha,20,true,2024-05-31\r',
    'size,rooms,town,zone,garage,sold\n120.5,3,"alpha"x,20,true,2024-05-31\n',
]


def _python_problems(call: Any, *args: Any) -> list[dict[str, Any]]:
    try:
        call(*args)
    except RequestValidationError as error:
        return [
            {"row": p.row, "column": p.column, "kind": p.kind, "message": p.message}
            for p in error.problems
        ]
    return []


@pytest.mark.parametrize(
    ("contract", "cases", "clean"),
    [(SPEC, RECORD_CASES, 4), (RANGED, RANGE_CASES, 1)],
    ids=["spec", "ranges"],
)
def test_records_get_the_same_problems_in_the_page(
    contract: InputContract, cases: list[Any], clean: int, site: Path, base_url: str, driver: Any
) -> None:
    assert contract_from_dict(contract_to_dict(contract)) == contract
    folder = next(name for name, known in CONTRACTS.items() if known is contract)
    open_page(driver, f"{base_url}{folder}/index.html")
    answers = run_async(
        driver,
        "const out = [];"
        "for (const rows of JSON.parse(args[0])) {"
        "  out.push({problems: await window.modelyard.check(rows), json: JSON.stringify(rows)});"
        "}"
        "return out;",
        json.dumps(cases),  # as JSON text: WebDriver's own transport drops lone surrogates
    )
    # The server reads what a browser sends: JSON.stringify(rows).
    for case, answer in zip(cases, answers, strict=True):
        sent = json.loads(answer["json"])
        python = _python_problems(decode_records, sent, contract)
        assert answer["problems"] == python, f"case {str(case)[:200]}"
    # (the cases that fit: the first, fractions, and two ISO dates; 271 is in range)
    assert sum(not answer["problems"] for answer in answers) == clean


def test_csv_gets_the_same_problems_in_the_page(site: Path, base_url: str, driver: Any) -> None:
    open_page(driver, f"{base_url}spec/index.html")
    answers = run_async(
        driver,
        "const out = [];"
        "for (const text of args[0]) out.push(await window.modelyard.checkCsv(text));"
        "return out;",
        CSV_CASES,
    )
    for text, answer in zip(CSV_CASES, answers, strict=True):
        assert answer == _python_problems(decode_csv, text, SPEC), f"CSV {text!r}"


def test_export_web_command_verifies_in_chromium(edge_yard: Settings, tmp_path: Path) -> None:
    """``modelyard export REF --target web --output DIR --verify``: the folder, and the
    browser's parity measured, printed and recorded."""
    from _projects import run_cli

    home = tmp_path / "home"
    shutil.copytree(edge_yard.home, home)
    folder = tmp_path / "tiers-web"
    shown = json.loads(
        run_cli(
            "export",
            "tiers:1",
            "--target",
            "web",
            "--output",
            str(folder),
            "--verify",
            "--json",
            home=home,
        ).stdout
    )
    assert shown["ok"] and shown["output"] == str(folder)
    browser = shown["parity"]["browser"]
    rows, _, _ = _reference(Settings(home=home), "tiers:1")
    assert browser["ok"] and browser["rows"] == len(rows) and browser["labels_equal"]
    assert {"index.html", "model.onnx", "contract.json", "modelyard.js", "contract.js"} <= set(
        shown["files"]
    )
    assert {"ort.wasm.min.js", "ort-wasm-simd-threaded.wasm"} <= {p.name for p in folder.iterdir()}
    assert _recorded(Settings(home=home), "tiers:1")["parity"]["browser"] == browser


def test_the_page_requests_nothing_outside_its_folder(
    base_url: str, driver: Any, edge_yard: Settings
) -> None:
    driver.get_log("performance")  # drop what earlier tests logged
    for folder in MODELS:
        open_page(driver, f"{base_url}{folder}/index.html")
        rows, _, contract = _reference(edge_yard, MODELS[folder])
        run_async(
            driver,
            "await window.modelyard.predict(args[0]);",
            json_records(rows.head(3), contract.names),
        )
        resources = driver.execute_script(
            "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)];"
        )
        logged = [
            json.loads(entry["message"])["message"] for entry in driver.get_log("performance")
        ]
        requested = [
            event["params"]["request"]["url"]
            for event in logged
            if event["method"] == "Network.requestWillBeSent"
        ]
        fetched = [
            url for url in [*resources, *requested] if not url.startswith(("data:", "blob:"))
        ]
        assert f"{base_url}{folder}/model.onnx" in fetched
        assert f"{base_url}{folder}/ort-wasm-simd-threaded.wasm" in fetched
        outside = [url for url in fetched if not url.startswith(f"{base_url}{folder}/")]
        assert outside == []


def test_screenshot_of_the_page(base_url: str, driver: Any, tmp_path: Path) -> None:
    """The page renders its form and a filled table (docs/web-export.png comes from here
    when MODELYARD_SCREENSHOT names a file)."""
    import os

    open_page(driver, f"{base_url}churn/index.html")
    driver.set_window_size(1100, 1000)
    driver.find_element("id", "csv-file").send_keys(str(_sample_csv(tmp_path)))
    _wait_for(driver, "#predictions tbody tr")
    assert len(_table(driver)) == 5
    target = Path(os.environ.get("MODELYARD_SCREENSHOT", tmp_path / "page.png"))
    assert driver.save_screenshot(str(target))
    assert target.stat().st_size > 10_000


def _sample_csv(tmp_path: Path) -> Path:
    frame = classification_frame(rows=5, seed=11).drop(columns=["label", "customer_id"])
    frame["monthly_spend"] = frame["monthly_spend"].map(lambda v: None if math.isnan(v) else v)
    path = tmp_path / "customers.csv"
    path.write_text(_csv(frame))
    return path


@pytest.mark.slow
def test_the_house_price_example_in_the_browser(tmp_path: Path, driver: Any) -> None:
    settings = Settings(home=tmp_path / "home")
    trained = api.train(api.example_project(tmp_path / "project"), settings=settings)
    ref = trained.version.ref
    result = api.export_edge(ref, target="web", output=tmp_path / "site" / "web", settings=settings)
    assert result.ok and result.parity["browser"] is not None, result.record()
    rows, expected, contract = _reference(settings, ref)
    with static_server(tmp_path / "site") as url:
        open_page(driver, f"{url}web/index.html")
        got = run_async(
            driver,
            "return await window.modelyard.predict(args[0]);",
            json_records(rows, contract.names),
        )
    tolerance = result.parity["browser"].tolerance
    np.testing.assert_allclose(
        got["predictions"], expected.values, rtol=tolerance["rtol"], atol=tolerance["atol"]
    )
