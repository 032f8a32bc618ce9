"""Model references: the accepted forms and the errors for everything else."""

from __future__ import annotations

import pytest

from modelyard.errors import ModelyardError
from modelyard.registry.refs import ModelRef, check_alias, check_model_name, parse_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("house-prices", ModelRef("house-prices")),
        ("house-prices:latest", ModelRef("house-prices")),
        ("house-prices@latest", ModelRef("house-prices")),
        ("house-prices:3", ModelRef("house-prices", version=3)),
        ("house-prices@production", ModelRef("house-prices", alias="production")),
        ("churn.v2@canary_eu-1", ModelRef("churn.v2", alias="canary_eu-1")),
        ("  churn:12 ", ModelRef("churn", version=12)),
    ],
)
def test_parse_ref_accepts_every_documented_form(text: str, expected: ModelRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "house prices",
        "churn:",
        "churn:abc",
        "churn@",
        "churn@Production",
        "churn:3@prod",
        "-churn",
        "churn:-1",
        "churn/3",
    ],
)
def test_parse_ref_rejects_malformed_refs_listing_the_forms(text: str) -> None:
    with pytest.raises(
        ModelyardError,
        match=r"not a model reference; expected one of 'NAME'.*"
        r"'NAME:VERSION'.*'NAME@ALIAS'",
    ):
        parse_ref(text)


def test_parse_ref_rejects_version_zero() -> None:
    with pytest.raises(ModelyardError, match="numbered from 1"):
        parse_ref("churn:0")


def test_model_ref_prints_back_as_its_text_form() -> None:
    assert [str(parse_ref(t)) for t in ("a", "a:latest", "a:3", "a@prod")] == [
        "a",
        "a",
        "a:3",
        "a@prod",
    ]
    assert parse_ref("a").is_latest and not parse_ref("a:1").is_latest


def test_model_ref_refuses_both_version_and_alias() -> None:
    with pytest.raises(ModelyardError, match="both version 3 and alias 'prod'"):
        ModelRef("churn", version=3, alias="prod")


def test_check_alias_and_model_name() -> None:
    assert check_alias("production") == "production"
    assert check_model_name("House_Prices.2") == "House_Prices.2"
    with pytest.raises(ModelyardError, match="'Prod' is not a valid alias: use lowercase"):
        check_alias("Prod")
    with pytest.raises(ModelyardError, match="alias 'latest' is reserved"):
        check_alias("latest")
    with pytest.raises(ModelyardError, match="'a b' is not a valid model name"):
        check_model_name("a b")
