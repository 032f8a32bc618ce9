"""Reading CSV, Parquet and SQL sources: order, as-of, errors, lineage record."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from modelyard.data.sources import describe_source, mask_url, read_source
from modelyard.errors import DataError
from modelyard.spec import DataSpec


def spec(**data: object) -> DataSpec:
    return DataSpec.model_validate(data)


@pytest.fixture
def sales() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sale_id": [3, 1, 4, 2, 5],
            "sold_at": ["2024-03-01", "2024-01-15", "2024-04-30", "2024-02-10", None],
            "year": [2008, 2006, 2010, 2007, 2009],
            "amount": [30.5, 10.0, 40.25, 20.0, 50.0],
            "shop": ["b", "a", "b", "a", "c"],
        }
    )


@pytest.fixture
def sqlite_file(tmp_path: Path, sales: pd.DataFrame) -> Path:
    """A real SQLite file whose rows are stored in shuffled order."""
    path = tmp_path / "shop.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    shuffled = sales.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled.to_sql("sales", engine, index=False)
    odd = pd.DataFrame({"order": [2, 1, 3], "Lot.Area": [5, 7, 6], "select": ["x", "y", "z"]})
    odd.to_sql("odd names", engine, index=False)
    engine.dispose()
    return path


# -- files ------------------------------------------------------------------------------


def test_csv_relative_to_base_dir_keeps_file_order(tmp_path: Path, sales: pd.DataFrame) -> None:
    (tmp_path / "data").mkdir()
    sales.to_csv(tmp_path / "data" / "sales.csv", index=False)
    frame = read_source(spec(source={"path": "data/sales.csv"}), base_dir=tmp_path)
    assert frame["sale_id"].tolist() == [3, 1, 4, 2, 5]
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0


def test_csv_options_and_compression(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "rows.csv.gz", "wt") as handle:
        handle.write("a;b\n1;x\n2;y\n")
    data = spec(source={"path": "rows.csv.gz", "options": {"sep": ";"}})
    frame = read_source(data, base_dir=tmp_path)
    assert frame.columns.tolist() == ["a", "b"] and frame["a"].tolist() == [1, 2]


def test_csv_index_col_option_stays_a_column(tmp_path: Path, sales: pd.DataFrame) -> None:
    sales.to_csv(tmp_path / "sales.csv", index=False)
    data = spec(source={"path": "sales.csv", "options": {"index_col": "sale_id"}})
    frame = read_source(data, base_dir=tmp_path)
    assert frame.columns[0] == "sale_id" and isinstance(frame.index, pd.RangeIndex)


def test_parquet_named_index_becomes_column(tmp_path: Path, sales: pd.DataFrame) -> None:
    sales.set_index("sale_id").to_parquet(tmp_path / "sales.parquet")
    sales.iloc[[4, 2, 0]].to_parquet(tmp_path / "subset.parquet")  # unnamed, not a range
    frame = read_source(spec(source={"path": "sales.parquet"}), base_dir=tmp_path)
    assert frame["sale_id"].tolist() == [3, 1, 4, 2, 5]
    subset = read_source(spec(source={"path": "subset.parquet"}), base_dir=tmp_path)
    assert subset.columns.tolist() == sales.columns.tolist()
    assert subset.index.tolist() == [0, 1, 2]


def test_absolute_path_ignores_base_dir(tmp_path: Path, sales: pd.DataFrame) -> None:
    sales.to_csv(tmp_path / "sales.csv", index=False)
    data = spec(source={"path": str(tmp_path / "sales.csv")})
    assert len(read_source(data, base_dir=Path("/nonexistent"))) == 5


def test_missing_file_names_path_and_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such file; check data\.source\.path"):
        read_source(spec(source={"path": "nope.csv"}), base_dir=tmp_path)


def test_folder_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        read_source(spec(source={"path": "rows.csv"}), base_dir=tmp_path)


def test_unreadable_parquet(tmp_path: Path) -> None:
    (tmp_path / "rows.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"rows\.parquet: cannot read as parquet .*format"):
        read_source(spec(source={"path": "rows.parquet"}), base_dir=tmp_path)


def test_unreadable_csv_names_encoding(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_bytes(b"a,b\n\xff\xfe\x00,\x81\n")
    with pytest.raises(DataError, match=r"rows\.csv: cannot read as csv .*encoding"):
        read_source(spec(source={"path": "rows.csv"}), base_dir=tmp_path)


def test_unknown_option_is_named(tmp_path: Path, sales: pd.DataFrame) -> None:
    sales.to_csv(tmp_path / "sales.csv", index=False)
    data = spec(source={"path": "sales.csv", "options": {"seperator": ";"}})
    with pytest.raises(DataError, match=r"data\.source\.options .*seperator"):
        read_source(data, base_dir=tmp_path)


@pytest.mark.parametrize("text", ["", "a,b\n"])
def test_empty_file_has_no_rows(tmp_path: Path, text: str) -> None:
    (tmp_path / "rows.csv").write_text(text)
    with pytest.raises(DataError, match=r"rows\.csv: no rows"):
        read_source(spec(source={"path": "rows.csv"}), base_dir=tmp_path)


def test_missing_id_column_suggests_close_name(tmp_path: Path, sales: pd.DataFrame) -> None:
    sales.to_csv(tmp_path / "sales.csv", index=False)
    data = spec(source={"path": "sales.csv"}, id_columns=["saleid"])
    with pytest.raises(DataError, match=r"data\.id_columns names 'saleid'.*did you mean 'sale_id'"):
        read_source(data, base_dir=tmp_path)


def test_missing_timestamp_column_lists_columns(tmp_path: Path, sales: pd.DataFrame) -> None:
    sales.to_csv(tmp_path / "sales.csv", index=False)
    data = spec(source={"path": "sales.csv"}, timestamp_column="zzz")
    with pytest.raises(
        DataError, match=r"data\.timestamp_column names 'zzz'.*columns are: sale_id"
    ):
        read_source(data, base_dir=tmp_path)


# -- SQL --------------------------------------------------------------------------------


def test_sql_table_ordered_by_id_columns(sqlite_file: Path) -> None:
    data = spec(
        source={"url": f"sqlite:///{sqlite_file}", "table": "sales"}, id_columns=["sale_id"]
    )
    frame = read_source(data, base_dir=Path("/"))
    assert frame["sale_id"].tolist() == [1, 2, 3, 4, 5]


def test_sql_query_ordered_by_timestamp(sqlite_file: Path) -> None:
    data = spec(
        source={"url": f"sqlite:///{sqlite_file}", "query": "SELECT sale_id, year FROM sales;"},
        timestamp_column="year",
    )
    frame = read_source(data, base_dir=Path("/"))
    assert frame["year"].tolist() == [2006, 2007, 2008, 2009, 2010]
    assert frame.columns.tolist() == ["sale_id", "year"]


def test_sql_ordered_by_every_column_without_ids(sqlite_file: Path) -> None:
    data = spec(
        source={"url": f"sqlite:///{sqlite_file}", "query": "SELECT shop, amount FROM sales"}
    )
    frame = read_source(data, base_dir=Path("/"))
    assert list(zip(frame["shop"], frame["amount"], strict=True)) == [
        ("a", 10.0),
        ("a", 20.0),
        ("b", 30.5),
        ("b", 40.25),
        ("c", 50.0),
    ]


def test_sql_quotes_identifiers(sqlite_file: Path) -> None:
    data = spec(
        source={"url": f"sqlite:///{sqlite_file}", "table": "odd names"},
        id_columns=["Lot.Area"],
    )
    assert read_source(data, base_dir=Path("/"))["order"].tolist() == [2, 3, 1]
    by_order = spec(source={"url": f"sqlite:///{sqlite_file}", "table": "main.odd names"})
    assert read_source(by_order, base_dir=Path("/"))["order"].tolist() == [1, 2, 3]


def test_sqlite_relative_to_base_dir(sqlite_file: Path) -> None:
    data = spec(source={"url": "sqlite:///shop.db", "table": "sales"}, id_columns=["sale_id"])
    assert len(read_source(data, base_dir=sqlite_file.parent)) == 5


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    data = spec(source={"url": "sqlite:///missing.db", "table": "sales"})
    with pytest.raises(DataError, match=r"no such SQLite database file .*missing\.db"):
        read_source(data, base_dir=tmp_path)
    assert not (tmp_path / "missing.db").exists()


def test_sql_failure_names_query_key(sqlite_file: Path) -> None:
    data = spec(source={"url": f"sqlite:///{sqlite_file}", "query": "SELECT nope FROM sales"})
    with pytest.raises(DataError, match=r"shop\.db: SQL failed .*nope.*check data\.source\.query"):
        read_source(data, base_dir=Path("/"))
    table = spec(source={"url": f"sqlite:///{sqlite_file}", "table": "nowhere"})
    with pytest.raises(DataError, match=r"no such table.*check data\.source\.table"):
        read_source(table, base_dir=Path("/"))


def test_sql_missing_id_column(sqlite_file: Path) -> None:
    data = spec(source={"url": f"sqlite:///{sqlite_file}", "table": "sales"}, id_columns=["id"])
    with pytest.raises(DataError, match=r"data\.id_columns names 'id'"):
        read_source(data, base_dir=Path("/"))


def test_sql_empty_result(sqlite_file: Path) -> None:
    query = "SELECT * FROM sales WHERE amount < 0"
    data = spec(source={"url": f"sqlite:///{sqlite_file}", "query": query})
    with pytest.raises(DataError, match="no rows"):
        read_source(data, base_dir=Path("/"))


def test_sql_failure_masks_password() -> None:
    url = "postgresql+psycopg://bob:hunter2@127.0.0.1:1/db"
    data = spec(source={"url": url, "table": "t"})
    with pytest.raises(DataError, match=r"bob:\*\*\*@127\.0\.0\.1") as caught:
        read_source(data, base_dir=Path("/"))
    assert "hunter2" not in str(caught.value)


def test_unknown_dialect() -> None:
    data = spec(source={"url": "nosuchdb://u:pw@h/db", "table": "t"})
    with pytest.raises(DataError, match=r"u:\*\*\*@h/db: cannot open this database URL"):
        read_source(data, base_dir=Path("/"))


def test_mask_url() -> None:
    assert mask_url("postgresql://me:secret@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert mask_url("sqlite:///a.db") == "sqlite:///a.db"
    assert mask_url("::not a url me:secret@db") == "::not a url me:secret@db"
    assert "secret" not in mask_url("not-a-url://me:secret@db")


# -- as of ------------------------------------------------------------------------------


@pytest.fixture
def sales_csv(tmp_path: Path, sales: pd.DataFrame) -> Path:
    sales.to_csv(tmp_path / "sales.csv", index=False)
    return tmp_path


def test_as_of_date_strings(sales_csv: Path) -> None:
    data = spec(source={"path": "sales.csv"}, timestamp_column="sold_at", as_of="2024-02-10")
    frame = read_source(data, base_dir=sales_csv)
    assert frame["sale_id"].tolist() == [1, 2]  # the row without a time is dropped too
    assert frame.index.tolist() == [0, 1]


def test_as_of_argument_overrides_spec(sales_csv: Path) -> None:
    data = spec(source={"path": "sales.csv"}, timestamp_column="sold_at", as_of="2024-02-10")
    frame = read_source(data, base_dir=sales_csv, as_of=dt.date(2024, 3, 1))
    assert frame["sale_id"].tolist() == [3, 1, 2]
    later = read_source(data, base_dir=sales_csv, as_of=dt.datetime(2024, 12, 31, 23, 0))
    assert len(later) == 4


@pytest.mark.parametrize("as_of", [2008, 2008.0, "2008", np.int64(2008)])
def test_as_of_year_compares_numerically(sales_csv: Path, as_of: object) -> None:
    data = spec(source={"path": "sales.csv"}, timestamp_column="year")
    frame = read_source(data, base_dir=sales_csv, as_of=as_of)
    assert sorted(frame["year"]) == [2006, 2007, 2008]


def test_as_of_on_sql(sqlite_file: Path) -> None:
    data = spec(
        source={"url": f"sqlite:///{sqlite_file}", "table": "sales"},
        id_columns=["sale_id"],
        timestamp_column="sold_at",
        as_of="2024-03-01",
    )
    assert read_source(data, base_dir=Path("/"))["sale_id"].tolist() == [1, 2, 3]


def test_as_of_tz_aware_column(tmp_path: Path) -> None:
    times = pd.to_datetime(["2024-01-01 10:00", "2024-01-02 10:00"]).tz_localize("UTC")
    pd.DataFrame({"t": times, "x": [1, 2]}).to_parquet(tmp_path / "t.parquet")
    data = spec(source={"path": "t.parquet"}, timestamp_column="t")
    assert read_source(data, base_dir=tmp_path, as_of="2024-01-01 12:00")["x"].tolist() == [1]
    aware = read_source(data, base_dir=tmp_path, as_of="2024-01-01T09:00:00-02:00")
    assert aware["x"].tolist() == [1]


def test_as_of_before_everything(sales_csv: Path) -> None:
    data = spec(source={"path": "sales.csv"}, timestamp_column="sold_at", as_of="2020-01-01")
    with pytest.raises(DataError, match=r"no rows on or before as_of '2020-01-01'.*2024-01-15"):
        read_source(data, base_dir=sales_csv)


@pytest.mark.parametrize(
    ("column", "as_of", "message"),
    [
        ("sold_at", "someday", r"as_of 'someday' is not a date"),
        ("sold_at", 2024, r"as_of 2024 is not a date, but column 'sold_at' holds dates"),
        ("year", dt.date(2008, 1, 1), r"is not a number, but column 'year' holds numbers"),
        (
            "shop",
            "2024-01-01",
            r"sales\.csv: column 'shop' holds values that are not dates \(e\.g\. 'b'\)",
        ),
        ("shop", 3, r"column 'shop' holds values that are not numbers"),
    ],
)
def test_as_of_mismatches(sales_csv: Path, column: str, as_of: object, message: str) -> None:
    data = spec(source={"path": "sales.csv"}, timestamp_column=column)
    with pytest.raises(DataError, match=message):
        read_source(data, base_dir=sales_csv, as_of=as_of)


def test_as_of_needs_timestamp_column(sales_csv: Path) -> None:
    with pytest.raises(DataError, match=r"needs data\.timestamp_column"):
        read_source(spec(source={"path": "sales.csv"}), base_dir=sales_csv, as_of="2024-01-01")


def test_as_of_on_boolean_column(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("flag,x\nTrue,1\nFalse,2\n")
    data = spec(source={"path": "b.csv"}, timestamp_column="flag")
    with pytest.raises(DataError, match="holds booleans, not times"):
        read_source(data, base_dir=tmp_path, as_of=1)


# -- describe ---------------------------------------------------------------------------


def test_describe_file_source(tmp_path: Path) -> None:
    data = spec(
        source={"path": "data/sales.csv", "options": {"sep": ";"}},
        id_columns=["sale_id"],
        timestamp_column="sold_at",
        as_of=dt.date(2024, 2, 1),
    )
    record = describe_source(data, base_dir=tmp_path)
    assert record == {
        "kind": "csv",
        "path": "data/sales.csv",
        "resolved_path": str(tmp_path.absolute() / "data" / "sales.csv"),
        "url": None,
        "query": None,
        "table": None,
        "options": {"sep": ";"},
        "id_columns": ["sale_id"],
        "timestamp_column": "sold_at",
        "as_of": "2024-02-01",
    }
    json.dumps(record)


def test_describe_sql_source_masks_password() -> None:
    data = spec(source={"url": "postgresql://me:s3cret@db/sales", "query": "SELECT 1"})
    record = describe_source(data, base_dir=Path("."))
    assert record["kind"] == "sql" and record["resolved_path"] is None
    assert record["url"] == "postgresql://me:***@db/sales" and record["query"] == "SELECT 1"
    assert "s3cret" not in json.dumps(record)


@pytest.mark.e2e
def test_postgres_source(fresh_postgres_url: str, sales: pd.DataFrame) -> None:
    engine = sa.create_engine(fresh_postgres_url)
    shuffled = sales.rename(columns={"shop": "Shop"}).sample(frac=1.0, random_state=1)
    shuffled.to_sql("Sales", engine, index=False)
    engine.dispose()
    query = 'SELECT "Shop", amount FROM "Sales" WHERE "Shop" LIKE \'a%\''
    frame = read_source(
        spec(source={"url": fresh_postgres_url, "query": query}), base_dir=Path("/")
    )
    assert frame.to_dict("list") == {"Shop": ["a", "a"], "amount": [10.0, 20.0]}
    table = spec(
        source={"url": fresh_postgres_url, "table": "public.Sales"},
        id_columns=["sale_id"],
        timestamp_column="sold_at",
        as_of="2024-03-01",
    )
    assert read_source(table, base_dir=Path("/"))["sale_id"].tolist() == [1, 2, 3]
