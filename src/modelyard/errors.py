"""The one exception tree of modelyard.

Every error a user can cause is a :class:`ModelyardError`. Each class knows the
exit code the CLI returns for it and the HTTP status a server answers with, so the
CLI and the REST layer map errors in one place. Messages say what went wrong,
where, and what to do about it.

::

    ModelyardError                      exit 2, HTTP 400
    ├── SpecError                       exit 2, HTTP 400   bad modelyard.yaml
    ├── DataError                       exit 2, HTTP 422   unreadable or empty data
    │   └── DataValidationError         exit 2, HTTP 422   data breaks a recorded schema
    ├── ModelNotFoundError (LookupError) exit 2, HTTP 404  no such model, version or alias
    ├── JobNotFoundError (LookupError)  exit 2, HTTP 404   no such batch job
    ├── JobNotFinished                  exit 2, HTTP 409   a batch job has not ended yet
    ├── RegistryError                   exit 2, HTTP 409   a registry rule was broken
    │   └── PromotionRefused            exit 2, HTTP 409   gates failed, no override
    ├── IntegrityError                  exit 3, HTTP 409   an artifact's checksum does not match
    ├── MissingExtraError (ImportError) exit 2, HTTP 500   optional dependency not installed
    ├── AuthError                       exit 2, HTTP 401   missing or wrong API key
    ├── LimitExceeded                   exit 2, HTTP 408/503  a request broke a server limit
    ├── ServerFault                     exit 1, HTTP 500   the server failed, not the request
    │   └── ServiceUnavailable          exit 1, HTTP 503   not able to answer now; retry
    └── CheckFailed                     exit 1, HTTP 409   a check ran and said no
        ├── GateFailed                  exit 1            evaluation gates failed
        └── ReproductionMismatch        exit 1            reproduce found differences
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "CheckFailed",
    "DataError",
    "DataValidationError",
    "GateFailed",
    "IntegrityError",
    "JobNotFinished",
    "JobNotFoundError",
    "LimitExceeded",
    "MissingExtraError",
    "ModelNotFoundError",
    "ModelyardError",
    "PromotionRefused",
    "RegistryError",
    "ReproductionMismatch",
    "ServerFault",
    "ServiceUnavailable",
    "SpecError",
]


class ModelyardError(Exception):
    """Base class of every error modelyard raises on purpose."""

    exit_code: int = 2
    http_status: int = 400

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by state, not by constructor arguments: subclasses take other
        arguments than the message ``args`` holds, so rebuilding one by calling its class
        would fail. Errors cross processes: a large request body is decoded in the
        server's decode process (:mod:`modelyard.serving.decodepool`), whose errors are
        the client's answer."""
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(kind: type[ModelyardError], args: tuple[Any, ...]) -> ModelyardError:
    """An error of class ``kind`` with ``args``, its ``__init__`` not run (pickle then
    restores its attributes)."""
    return kind.__new__(kind, *args)


class SpecError(ModelyardError):
    """The project spec (``modelyard.yaml``) is malformed or inconsistent."""


class DataError(ModelyardError):
    """Data could not be read, or is unusable (empty, target missing...)."""

    http_status = 422


class DataValidationError(DataError):
    """Data does not match a recorded schema; ``problems`` lists every finding."""

    def __init__(self, message: str, *, problems: list[Any] | None = None) -> None:
        super().__init__(message, details=problems)
        self.problems: list[Any] = problems or []


class ModelNotFoundError(ModelyardError, LookupError):
    """No such model, version or alias in the registry."""

    http_status = 404


class JobNotFoundError(ModelyardError, LookupError):
    """No batch job has the given id."""

    http_status = 404


class JobNotFinished(ModelyardError):
    """A batch job is still queued or running, and the action needs it ended."""

    http_status = 409


class RegistryError(ModelyardError):
    """A registry operation broke a rule (e.g. rollback with no history)."""

    http_status = 409


class PromotionRefused(RegistryError):
    """Promotion of a version whose gates failed, without an explicit override."""


class IntegrityError(ModelyardError):
    """Stored bytes do not match the checksum the registry recorded for them."""

    exit_code = 3
    http_status = 409


class MissingExtraError(ModelyardError, ImportError):
    """An optional dependency is not installed; the message names the extra."""

    http_status = 500


class AuthError(ModelyardError):
    """A request lacks the API key an endpoint requires, or gives a wrong one."""

    http_status = 401


class LimitExceeded(ModelyardError):
    """A request broke a server limit that protects other clients (slow body, busy).

    ``status`` is the HTTP status to answer: 408 for a body that came too slowly, 503
    when the server is reading as many bodies as it holds.
    """

    def __init__(self, message: str, *, status: int = 503) -> None:
        super().__init__(message)
        self.http_status = status


class ServerFault(ModelyardError):
    """A failure of the server itself (a runtime that broke its contract, say), never
    caused by the request: servers answer 500 with the request id and log a traceback."""

    exit_code = 1
    http_status = 500


class ServiceUnavailable(ServerFault):
    """The server cannot answer this request now (a model being unloaded); the client
    may retry."""

    http_status = 503


class CheckFailed(ModelyardError):
    """A check ran to completion and failed (gates, reproduce, drift)."""

    exit_code = 1
    http_status = 409


class GateFailed(CheckFailed):
    """A trained model failed its evaluation gates. It is kept, but not promotable."""

    def __init__(self, message: str, *, ref: str, failures: list[str]) -> None:
        super().__init__(message, details=failures)
        self.ref = ref
        self.failures = failures


class ReproductionMismatch(CheckFailed):
    """``reproduce`` rebuilt a version and found differences from its lineage."""

    def __init__(self, message: str, *, differences: list[str]) -> None:
        super().__init__(message, details=differences)
        self.differences = differences
