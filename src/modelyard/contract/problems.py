"""What a check of input against a contract finds: problems, counted and listed.

One :class:`Problems` collector serves both fronts of the contract: the JSON front
raises its first 50 as a :class:`RequestValidationError` (a request's 422), the pandas
front groups all of them by column and kind (a frame's report, with example rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

from modelyard.errors import DataValidationError

__all__ = ["InputProblem", "ProblemGroup", "Problems", "RequestValidationError", "show"]

_LISTED = 50
_GROUP_ROWS = 5
_NO_VALUE = object()


@dataclass(frozen=True)
class InputProblem:
    """One way a request breaks the model's inputs; ``message`` says where, what and fix.

    ``kind`` is one of ``missing_column``, ``null_value``, ``wrong_type``,
    ``unseen_category``, ``out_of_range``, ``non_finite_feature``, ``non_finite_output``,
    ``invalid_text``, ``text_too_long``, ``too_many_columns``, ``too_many_rows``,
    ``empty``, ``malformed``.
    """

    row: int | None
    column: str | None
    kind: str
    message: str


class RequestValidationError(DataValidationError):
    """A request does not fit the model's inputs (HTTP 422).

    ``problems`` lists the first 50 problems; ``total`` counts them all.
    """

    def __init__(self, problems: list[InputProblem], *, total: int | None = None) -> None:
        self.total = max(total or 0, len(problems))
        counted = f"{self.total} problem{'s' if self.total != 1 else ''}"
        if self.total > len(problems):
            counted += f", the first {len(problems)} listed"
        lines = [f"the request does not fit the model's inputs ({counted}):"]
        lines += [f"  {problem.message}" for problem in problems]
        super().__init__("\n".join(lines), problems=problems)
        self.problems: list[InputProblem] = problems


@dataclass
class ProblemGroup:
    """Every problem of one kind in one column: how many, the first rows, the first
    distinct values (up to 5) and the first problem's detail."""

    column: str | None
    kind: str
    count: int = 0
    rows: list[int] = field(default_factory=list)
    examples: list[Any] = field(default_factory=list)
    detail: str = ""


class Problems:
    """Collects problems: counts all, lists the first 50, groups them by column and kind.

    ``limit`` is how many are listed (None: all of them, for a caller that keeps the
    good rows and needs every bad row's every reason, as batch scoring does).
    """

    __slots__ = ("groups", "limit", "listed", "total")

    def __init__(self, limit: int | None = _LISTED) -> None:
        self.listed: list[InputProblem] = []
        self.total = 0
        self.limit = limit
        self.groups: dict[tuple[str | None, str], ProblemGroup] = {}

    def add(
        self,
        row: int | None,
        column: str | None,
        kind: str,
        detail: str,
        value: Any = _NO_VALUE,
    ) -> None:
        """Record one problem: at ``row`` (None: the whole request) of ``column``."""
        self.total += 1
        if self.limit is None or len(self.listed) < self.limit:
            where = [f"row {row}"] if row is not None else []
            where += [f"column {column!r}"] if column is not None else []
            message = f"{', '.join(where)}: {detail}" if where else detail
            self.listed.append(InputProblem(row, column, kind, message))
        group = self.groups.get((column, kind))
        if group is None:
            group = self.groups[(column, kind)] = ProblemGroup(column, kind, detail=detail)
        group.count += 1
        if row is not None and len(group.rows) < _GROUP_ROWS:
            group.rows.append(row)
        if (
            value is not _NO_VALUE
            and len(group.examples) < _GROUP_ROWS
            and not any(value is seen or _same(value, seen) for seen in group.examples)
        ):
            group.examples.append(value)

    def check(self) -> None:
        """Raise the problems found, if any.

        Raises:
            RequestValidationError: the first 50 problems (``limit``), and their count.
        """
        if self.total:
            raise RequestValidationError(self.listed, total=self.total)

    def by_row(self) -> dict[int, list[InputProblem]]:
        """The listed problems of each row (in the order found); whole-request problems
        (``row`` None) are left out."""
        found: dict[int, list[InputProblem]] = {}
        for problem in self.listed:
            if problem.row is not None:
                found.setdefault(problem.row, []).append(problem)
        return found


def _same(value: Any, seen: Any) -> bool:
    try:
        return type(value) is type(seen) and bool(value == seen)
    except Exception:  # an odd object's comparison: count it as another value
        return False


def fail(kind: str, detail: str) -> NoReturn:
    """Raise one problem of the whole request."""
    problems = Problems()
    problems.add(None, None, kind, detail)
    raise RequestValidationError(problems.listed)


def show(value: Any) -> str:
    """A short form of a value for a message (long text cut, containers named)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return ascii(shown) if not shown.isascii() and not _printable(shown) else repr(shown)
    if isinstance(value, dict | list | tuple):
        return "an object" if isinstance(value, dict) else "a list"
    return repr(value)[:40]


def _printable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
