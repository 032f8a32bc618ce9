"""Model references: how users name a model version on the command line and over HTTP.

Accepted forms::

    house-prices              the latest version
    house-prices:latest       the same
    house-prices:3            version 3
    house-prices@production   whatever version the alias 'production' points to

Example:
    >>> parse_ref("house-prices@production")
    ModelRef(name='house-prices', version=None, alias='production')
    >>> str(parse_ref("house-prices:3"))
    'house-prices:3'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard.errors import ModelyardError

__all__ = [
    "ALIAS_PATTERN",
    "MODEL_NAME_PATTERN",
    "ModelRef",
    "check_alias",
    "check_model_name",
    "parse_ref",
]

#: Model names: the same rule as ``name`` in ``modelyard.yaml``.
MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
#: Alias names: lowercase, so ``production`` and ``Production`` cannot both exist.
ALIAS_PATTERN = r"[a-z][a-z0-9_-]{0,62}"

_REF_RE = re.compile(
    rf"^(?P<name>{MODEL_NAME_PATTERN})"
    rf"(?::(?P<version>[0-9]+|latest)|@(?P<alias>{ALIAS_PATTERN}))?$"
)
_NAME_RE = re.compile(rf"^{MODEL_NAME_PATTERN}$")
_ALIAS_RE = re.compile(rf"^{ALIAS_PATTERN}$")
_RESERVED_ALIASES = frozenset({"latest"})

_FORMS = (
    "expected one of 'NAME' (latest version), 'NAME:latest', 'NAME:VERSION' "
    "(e.g. 'house-prices:3') or 'NAME@ALIAS' (e.g. 'house-prices@production')"
)


@dataclass(frozen=True)
class ModelRef:
    """A reference to one version of a model: by number, by alias, or the latest.

    Attributes:
        name: the model name.
        version: a version number, or None.
        alias: an alias such as ``production``, or None. At most one of ``version`` and
            ``alias`` is set; neither means the latest version.
    """

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        if self.version is not None and self.alias is not None:
            raise ModelyardError(
                f"model reference to {self.name!r} gives both version {self.version} and "
                f"alias {self.alias!r}; give one of them"
            )

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name

    @property
    def is_latest(self) -> bool:
        """Whether this reference means the latest version."""
        return self.version is None and self.alias is None


def parse_ref(text: str) -> ModelRef:
    """Parse ``NAME``, ``NAME:latest``, ``NAME:VERSION`` or ``NAME@ALIAS``.

    Raises:
        ModelyardError: ``text`` is none of those forms; the message lists them.
    """
    cleaned = text.strip() if isinstance(text, str) else text
    match = _REF_RE.match(cleaned) if isinstance(cleaned, str) else None
    if match is None:
        raise ModelyardError(f"{text!r} is not a model reference; {_FORMS}")
    version_text = match.group("version")
    alias = match.group("alias")
    if version_text is None or version_text == "latest":
        # 'latest' cannot be an alias (check_alias refuses it), so NAME@latest is NAME.
        return ModelRef(name=match.group("name"), alias=None if alias == "latest" else alias)
    version = int(version_text)
    if version < 1:
        raise ModelyardError(f"{text!r}: versions are numbered from 1; {_FORMS}")
    return ModelRef(name=match.group("name"), version=version)


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name.

    Raises:
        ModelyardError: it is not; the message says what is allowed.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ModelyardError(
            f"{name!r} is not a valid model name: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 100 characters"
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if it is a valid alias name.

    Raises:
        ModelyardError: it is not (or is the reserved word ``latest``).
    """
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        raise ModelyardError(
            f"{alias!r} is not a valid alias: use lowercase letters, digits, '_' or '-', "
            "starting with a letter, at most 63 characters (e.g. 'production', 'staging')"
        )
    if alias in _RESERVED_ALIASES:
        raise ModelyardError(
            f"alias {alias!r} is reserved: 'NAME:latest' always means the newest version; "
            "choose another alias name"
        )
    return alias
