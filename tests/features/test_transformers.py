"""modelyard's own transformers: coercion, log, date parts, ratio, cross."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from modelyard.errors import DataValidationError
from modelyard.features.transformers import (
    Cross,
    DateParts,
    FrameCoercer,
    Log1pTransformer,
    Ratio,
    category_values,
)


@parametrize_with_checks([Log1pTransformer(), Log1pTransformer(offset=0.5)])
def test_log1p_passes_sklearn_checks(estimator, check):
    check(estimator)


def test_category_values_unify_numbers_and_text():
    values = category_values(pd.Series([20, 20.0, "20", None, np.nan, True, 2.5, "RL"]))
    assert values.dtype == object
    assert values[:3].tolist() == ["20", "20", "20"]
    assert np.isnan(values[3]) and np.isnan(values[4])
    assert values[5:].tolist() == ["True", "2.5", "RL"]


def test_category_values_of_a_float_column():
    values = category_values(pd.Series([60.0, np.nan, 20.0]))
    assert values[0] == "60" and values[2] == "20" and np.isnan(values[1])


class TestFrameCoercer:
    def test_orders_and_types_columns_ignoring_extras(self):
        frame = pd.DataFrame(
            {
                "extra": [1, 2],
                "when": ["2010-06-30", None],
                "zone": [20, None],
                "area": ["5.5", 7],
            }
        )
        coercer = FrameCoercer(numeric=["area"], categorical=["zone"], datetime=["when"])
        out = coercer.fit_transform(frame)
        assert out.columns.tolist() == ["area", "zone", "when"]
        assert coercer.feature_order_ == ["area", "zone", "when"]
        assert out["area"].dtype == np.float64 and out["area"].tolist() == [5.5, 7.0]
        assert out["zone"].dtype == object and out["zone"][0] == "20"
        assert out["zone"][1] is np.nan
        assert pd.api.types.is_datetime64_dtype(out["when"].dtype)
        assert out["when"].isna().tolist() == [False, True]
        assert coercer.get_feature_names_out().tolist() == ["area", "zone", "when"]

    def test_serving_values_match_training_values(self):
        coercer = FrameCoercer(numeric=["x"], categorical=["c"]).fit(
            pd.DataFrame({"x": [1, 2], "c": [20, 30]})
        )
        # JSON-ish input: one record as a mapping of scalars, numbers as text.
        out = coercer.transform({"c": "20", "x": "3"})
        assert out["c"].tolist() == ["20"] and out["x"].tolist() == [3.0]
        records = coercer.transform([{"x": 1.5, "c": 20.0}])
        assert records["c"].tolist() == ["20"]

    def test_missing_columns_are_named(self):
        coercer = FrameCoercer(numeric=["a", "b"], categorical=["c"])
        with pytest.raises(DataValidationError, match=r"'b', 'c'") as info:
            coercer.fit(pd.DataFrame({"a": [1.0]}))
        assert info.value.problems == ["column 'b' is missing", "column 'c' is missing"]
        coercer.fit(pd.DataFrame({"a": [1.0], "b": [2.0], "c": ["x"]}))
        with pytest.raises(DataValidationError, match=r"lacks 1 required column\(s\): 'c'"):
            coercer.transform(pd.DataFrame({"a": [1.0], "b": [2.0]}))

    def test_text_in_a_numeric_column_is_an_error_naming_row_and_value(self):
        coercer = FrameCoercer(numeric=["price"], categorical=[]).fit(
            pd.DataFrame({"price": [1.0]})
        )
        bad = pd.DataFrame({"price": ["10", "", "ten"]}, index=[5, 6, 7])
        with pytest.raises(
            DataValidationError, match=r"'price' should be numeric.*'ten' \(rows 7\)"
        ):
            coercer.transform(bad)
        ok = coercer.transform(pd.DataFrame({"price": ["10", " "]}))
        assert ok["price"].iloc[0] == 10.0 and np.isnan(ok["price"].iloc[1])

    def test_bad_dates_are_errors_and_zones_become_utc(self):
        coercer = FrameCoercer(numeric=[], categorical=[], datetime=["t"]).fit(
            pd.DataFrame({"t": ["2020-01-01"]})
        )
        with pytest.raises(DataValidationError, match=r"'t' should hold dates.*'soon'"):
            coercer.transform(pd.DataFrame({"t": ["2020-01-01", "soon"]}))
        aware = pd.DataFrame({"t": pd.to_datetime(["2020-01-01T12:00:00+02:00"])})
        assert coercer.transform(aware)["t"].iloc[0] == pd.Timestamp("2020-01-01 10:00")

    def test_a_column_listed_twice_and_unnamed_input_are_refused(self):
        with pytest.raises(ValueError, match=r"'a' is listed as both numeric and categorical"):
            FrameCoercer(numeric=["a"], categorical=["a"]).fit(pd.DataFrame({"a": [1]}))
        with pytest.raises(DataValidationError, match="needs named columns"):
            FrameCoercer(numeric=["a"], categorical=[]).fit(np.zeros((2, 1)))

    def test_clone_keeps_params(self):
        coercer = FrameCoercer(numeric=["a"], categorical=["b"], datetime=["c"])
        assert clone(coercer).get_params() == coercer.get_params()


class TestLog1p:
    def test_values_and_nonpositive_shift(self):
        X = np.array([[0.0, 1.0], [np.e - 1, -1.0], [np.nan, -5.0]])
        out = Log1pTransformer().fit_transform(X)
        np.testing.assert_allclose(out[:2, 0], [0.0, 1.0])
        assert np.isnan(out[2, 0]) and np.isnan(out[1, 1]) and np.isnan(out[2, 1])
        shifted = Log1pTransformer(offset=0.0).fit_transform(np.array([[np.e], [0.0]]))
        assert shifted[0, 0] == pytest.approx(1.0) and np.isnan(shifted[1, 0])

    def test_float32_is_preserved(self):
        out = Log1pTransformer().fit_transform(np.ones((3, 2), dtype=np.float32))
        assert out.dtype == np.float32

    @pytest.mark.parametrize("offset", [-1.0, float("inf"), "1"])
    def test_bad_offset(self, offset):
        with pytest.raises(ValueError, match=r"'offset' parameter of Log1pTransformer"):
            Log1pTransformer(offset=offset).fit(np.ones((2, 1)))


class TestDateParts:
    def test_parts_and_names(self):
        frame = pd.DataFrame(
            {
                "sold": pd.to_datetime(["2010-06-30 14:00", None]),
                "built": ["1999-01-04", "2000-12-31"],
            }
        )
        parts = DateParts(parts=["year", "quarter", "dayofweek", "hour"]).fit(frame)
        out = parts.transform(frame)
        assert parts.get_feature_names_out().tolist() == [
            "sold_year",
            "sold_quarter",
            "sold_dayofweek",
            "sold_hour",
            "built_year",
            "built_quarter",
            "built_dayofweek",
            "built_hour",
        ]
        assert out[0].tolist() == [2010.0, 2.0, 2.0, 14.0, 1999.0, 1.0, 0.0, 0.0]
        assert np.isnan(out[1, :4]).all()

    def test_bad_parts_and_wrong_width(self):
        frame = pd.DataFrame({"d": pd.to_datetime(["2010-01-01"])})
        with pytest.raises(ValueError, match=r"'parts' parameter of DateParts"):
            DateParts(parts=["week"]).fit(frame)
        fitted = DateParts(parts=["year"]).fit(frame)
        with pytest.raises(DataValidationError, match="fitted on 1 column"):
            fitted.transform(pd.DataFrame({"d": frame["d"], "e": frame["d"]}))


class TestRatioAndCross:
    def test_ratio_appends_a_column(self):
        frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, np.nan], "b": [2.0, 0.0, np.nan, 1.0]})
        ratio = Ratio(numerator="a", denominator="b", name="a_b").fit(frame)
        out = ratio.transform(frame)
        assert out.columns.tolist() == ["a", "b", "a_b"]
        assert out["a_b"].iloc[0] == 0.5 and out["a_b"].iloc[1:].isna().all()
        assert ratio.get_feature_names_out().tolist() == ["a", "b", "a_b"]

    def test_ratio_checks_columns(self):
        frame = pd.DataFrame({"a": [1.0], "b": [2.0]})
        with pytest.raises(DataValidationError, match=r"'c'"):
            Ratio(numerator="a", denominator="c", name="r").fit(frame)
        with pytest.raises(ValueError, match=r"output column 'a' already exists"):
            Ratio(numerator="a", denominator="b", name="a").fit(frame)
        fitted = Ratio(numerator="a", denominator="b", name="r").fit(frame)
        with pytest.raises(DataValidationError, match="differ from those seen in fit"):
            fitted.transform(frame[["b", "a"]])

    def test_cross_joins_category_text(self):
        frame = pd.DataFrame({"zone": ["RL", "RM", None], "cls": [20.0, 60.0, 20.0]})
        cross = Cross(columns=["zone", "cls"], name="zone_cls").fit(frame)
        out = cross.transform(frame)
        assert out["zone_cls"].dtype == object
        assert out["zone_cls"].iloc[:2].tolist() == ["RL|20", "RM|60"]
        assert out["zone_cls"].iloc[2] is np.nan
        assert cross.get_feature_names_out()[-1] == "zone_cls"
