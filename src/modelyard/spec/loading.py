"""Loading a spec file: YAML with line numbers, one SpecError naming file, line and key."""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from modelyard.errors import SpecError
from modelyard.spec._base import _AT, SPEC_FILENAME
from modelyard.spec.project import ProjectSpec

__all__ = ["LoadedSpec", "load_spec", "parse_spec", "spec_digest", "spec_to_dict"]


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the file it came from; paths in it are relative to ``project_dir``."""

    spec: ProjectSpec
    path: Path
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict, repr=False)

    @property
    def project_dir(self) -> Path:
        """The folder the spec file sits in."""
        return self.path.parent

    def where(self, key: str) -> str:
        """``file:line`` of a dotted ``key`` (its closest written parent if it has none).

        Example:
            >>> lines = {("model",): 9, ("model", "params"): 11}
            >>> loaded = LoadedSpec(spec=None, path=Path("p/modelyard.yaml"), lines=lines)
            >>> loaded.where("model.params.max_iter")
            'p/modelyard.yaml:11'
        """
        loc = tuple(int(part) if part.isdigit() else part for part in key.split("."))
        line = _closest_line(loc, self.lines)
        return f"{self.path}:{line}" if line else str(self.path)


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and validate a spec file, or the ``modelyard.yaml`` of a project folder.

    Raises:
        SpecError: the file is missing, is not YAML, or breaks the schema; every problem
            is listed with its line and dotted key.
    """
    target = Path(path)
    if target.is_dir():
        target = target / SPEC_FILENAME
    if not target.is_file():
        hint = "run `modelyard init DATA --target COLUMN` to create one"
        raise SpecError(f"{target}: no project spec here; {hint}")
    text = target.read_text(encoding="utf-8")
    spec, lines = _parse(text, source=str(target))
    return LoadedSpec(spec=spec, path=target.absolute(), lines=lines)


def parse_spec(text: str, *, source: str = SPEC_FILENAME) -> ProjectSpec:
    """Validate spec ``text``; ``source`` names it in error messages."""
    return _parse(text, source=source)[0]


def _parse(text: str, *, source: str) -> tuple[ProjectSpec, dict[tuple[str | int, ...], int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        found = type(raw).__name__ if raw is not None else "an empty file"
        raise SpecError(f"{source}: expected a mapping of keys (name, task, ...), found {found}")
    lines = _node_lines(node)
    try:
        return ProjectSpec.model_validate(raw), lines
    except ValidationError as exc:
        problems = [_describe_error(err, lines, source) for err in exc.errors()]
        head = f"{source}: invalid project spec ({len(problems)} problem"
        head += "s)" if len(problems) != 1 else ")"
        raise SpecError("\n".join([head, *problems]), details=problems) from None


def spec_to_dict(spec: ProjectSpec) -> dict[str, Any]:
    """The spec as plain JSON data, defaults filled in, for lineage and comparison."""
    return spec.model_dump(mode="json")


def spec_digest(data: Any) -> str:
    """sha256 of the canonical JSON of ``data`` (sorted keys, no whitespace)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _node_lines(node: yaml.Node | None) -> dict[tuple[str | int, ...], int]:
    """Map each key path of the YAML document to the (1-based) line it starts on."""
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(current: yaml.Node, path: tuple[str | int, ...]) -> None:
        lines[path] = current.start_mark.line + 1
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = (*path, str(key_node.value))
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
                lines[key] = key_node.start_mark.line + 1
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                walk(item, (*path, index))

    if node is not None:
        walk(node, ())
    return lines


def _describe_error(err: Any, lines: dict[tuple[str | int, ...], int], source: str) -> str:
    # Discriminated unions add the tag ('log', 'bin', ...) to loc; it is no YAML key.
    loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and "[" in part))
    loc = tuple(p for p in loc if p not in _TRANSFORM_KINDS or not _follows_index(loc, p))
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = _closest_line(loc, lines)
    where = f"{source}:{line}" if line else source
    kind = err["type"]
    found = err.get("input")
    if kind == "extra_forbidden":
        parent = _model_fields_at(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), parent, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
        known = f"; expected one of {', '.join(sorted(parent))}" if parent and not hint else ""
        return f"{where} {key}: unknown key{suggestion}{known}"
    if kind == "missing":
        return f"{where} {key}: required key is missing"
    message = str(err["msg"]).removeprefix("Value error, ")
    if message.startswith(_AT):  # a cross-field check that knows its key
        key, _, message = message.removeprefix(_AT).partition(": ")
        loc = tuple(int(p) if p.isdigit() else p for p in key.split("."))
        line = _closest_line(loc, lines)
        where = f"{source}:{line}" if line else source
        return f"{where} {key}: {message}"
    if kind in ("value_error", "assertion_error") or isinstance(found, dict):
        return f"{where} {key}: {message}"
    return f"{where} {key}: found {found!r}; {message[0].lower()}{message[1:]}"


_TRANSFORM_KINDS = {"log", "power", "bin", "date_parts", "ratio", "cross", "custom"}


def _follows_index(loc: tuple[Any, ...], part: Any) -> bool:
    index = loc.index(part)
    return index > 0 and isinstance(loc[index - 1], int)


def _closest_line(loc: tuple[Any, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def _model_fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names allowed at a key path, for 'did you mean' hints."""
    model: Any = ProjectSpec
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
