"""Strict response validator for HashiCorp's published HCP Swagger 2.0 documents.

The documents themselves live outside the repository (see :func:`spec_dir`); this module
only knows how to read them. On top of plain schema validation it enforces the wire rules
that HashiCorp's generated Go client relies on (``shared/spec/NOTES.md``):

* every key must be declared (strict objects), and ``null`` is never sent;
* ``format: int64`` values travel as JSON strings of decimal digits, int32 as JSON numbers;
* ``date-time`` values are RFC 3339 UTC with a ``Z`` suffix and never Go's zero time or the epoch;
* present scalars never carry their zero value (grpc-gateway omits them), empty maps are omitted;
* the arrays the client does not mark ``omitempty`` are always present, ``[]`` when empty;
* error bodies are ``google.rpc.Status`` plus an ``error`` key equal to ``message``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import pathlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALWAYS_PRESENT_ARRAYS",
    "ALWAYS_PRESENT_ENUMS",
    "ALWAYS_PRESENT_FIELDS",
    "MEANINGFUL_ZERO_ENUMS",
    "SPEC_FILES",
    "ContractViolation",
    "Operation",
    "Problem",
    "SwaggerContract",
    "missing_spec",
    "spec_dir",
]

Schema = Mapping[str, Any]

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})

#: Arrays the Go client does not tag ``omitempty``: responses must always carry them.
#: (Every array property of a response root is required as well; see ``_required_keys``.)
ALWAYS_PRESENT_ARRAYS: Mapping[str, frozenset[str]] = {
    "hashicorp.cloud.packer.Bucket": frozenset({"platforms"}),
    "hashicorp.cloud.packer.Iteration": frozenset({"builds"}),
    "hashicorp.cloud.packer.BucketLatestIteration": frozenset({"builds"}),
    "hashicorp.cloud.packer.Build": frozenset({"images"}),
    "hashicorp.cloud.packer.LatestIterationBuild": frozenset({"images"}),
    "google.rpc.Status": frozenset({"details"}),
    # 2023-01-01 (client-compatibility-2023.md section I: arrays the Go clients don't tag omitempty)
    "hashicorp.cloud.packer_20230101.Bucket": frozenset({"platforms"}),
    "hashicorp.cloud.packer_20230101.Version": frozenset({"builds"}),
    "hashicorp.cloud.packer_20230101.Build": frozenset({"artifacts"}),
}

#: Other fields a client fails without (2023 contract, section I): terraform-provider-hcp dereferences a
#: bucket's location, Packer judges a version's completion by its name.
ALWAYS_PRESENT_FIELDS: Mapping[str, frozenset[str]] = {
    "hashicorp.cloud.packer_20230101.Bucket": frozenset({"location", "resource_name"}),
    "hashicorp.cloud.packer_20230101.Version": frozenset({"name", "fingerprint"}),
}

#: Enums whose proto zero value is a real answer: allowed when present.
MEANINGFUL_ZERO_ENUMS = frozenset(
    {
        "hashicorp.cloud.packer.BuildStatus",
        "hashicorp.cloud.packer.BucketAncestry.Status",
        "hashicorp.cloud.packer.RegistryBillingDeprovision.Reason",
        "hashicorp.cloud.packer_20230101.BuildStatus",
        "hashicorp.cloud.packer_20230101.AncestryStatus",
        "hashicorp.cloud.packer_20230101.RegistryBillingDeprovision.Reason",
        "hashicorp.cloud.packer_20230101.SbomFormat",
    }
)

#: Properties typed with these enums must always be present (a build always has a status).
ALWAYS_PRESENT_ENUMS = frozenset(
    {
        "hashicorp.cloud.packer.BuildStatus",
        # Packer and the provider dereference a version's and a build's status (2023 contract, section I).
        "hashicorp.cloud.packer_20230101.BuildStatus",
        "hashicorp.cloud.packer_20230101.VersionStatus",
    }
)

# Schema keywords this validator implements, and those it may safely ignore. Anything else
# (allOf, pattern, minimum, ...) makes ``load`` fail rather than be silently skipped.
_SUPPORTED_KEYWORDS = frozenset(
    {"$ref", "type", "properties", "additionalProperties", "items", "format", "enum", "required"}
)
_IGNORED_KEYWORDS = frozenset({"description", "title", "default", "example", "readOnly", "externalDocs"})
_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})
_KNOWN_TYPES = _SCALAR_TYPES | {"array", "object"}

_INT64_FORMATS = frozenset({"int64", "uint64"})
_INT64_RE = re.compile(r"(?:0|-?[1-9][0-9]*)")
_INT_RANGES: Mapping[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_DATE_TIME_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?Z"
)
_PARAM_RE = re.compile(r"\{[^{}/]+\}")
_ERROR_KEY = "error"
_ERROR_REQUIRED = frozenset({"code", "message", "details", _ERROR_KEY})


# The documents the suite validates against (HashiCorp's, kept byte for byte; not in this repository).
SPEC_FILES = (
    "packer-service-2021-04-30.swagger.json",
    "packer-service-2023-01-01.swagger.json",
    "resource-manager-2019-12-10.swagger.json",
)


def spec_dir() -> pathlib.Path:
    """Directory holding HashiCorp's Swagger documents.

    ``$PACKYARD_SPEC_DIR`` wins: the directory holding the documents, or one holding them in ``hcp/``
    (as ``shared/spec`` does); otherwise ``shared/spec/hcp`` beside the repository checkout.
    """
    override = os.environ.get("PACKYARD_SPEC_DIR")
    if override:
        given = pathlib.Path(override)
        return given / "hcp" if (given / "hcp" / SPEC_FILES[0]).is_file() else given
    return pathlib.Path(__file__).resolve().parents[3] / "shared" / "spec" / "hcp"


def missing_spec() -> str | None:
    """One line saying where to get the documents when spec_dir() lacks any of them; None when all are there."""
    where = spec_dir()
    missing = [name for name in SPEC_FILES if not (where / name).is_file()]
    if not missing:
        return None
    return (
        f"the tests need HashiCorp's API documents, and {where} lacks {', '.join(missing)}: download them "
        "from the HCP API reference (https://developer.hashicorp.com/hcp/api-docs/packer and "
        "https://developer.hashicorp.com/hcp/api-docs/resource-manager) "
        "into a directory and set PACKYARD_SPEC_DIR to it, or put them in shared/spec/hcp beside the checkout"
    )


@dataclass(frozen=True)
class Problem:
    """One contract violation: a JSON pointer into the body (``""`` is the root) and a reason."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


class ContractViolation(AssertionError):
    """A response body breaks the contract; ``problems`` lists every violation found."""

    def __init__(self, operation_id: str, status: int, problems: Sequence[Problem]) -> None:
        self.operation_id = operation_id
        self.status = status
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"{operation_id} (HTTP {status}): {len(self.problems)} contract violation(s)\n{lines}")

    @property
    def paths(self) -> list[str]:
        return [problem.path for problem in self.problems]


@dataclass(frozen=True, eq=False)
class Operation:
    """One Swagger operation: its id, HTTP method, path template and declared responses."""

    operation_id: str
    method: str
    path: str
    responses: Mapping[str, Any] = field(repr=False)
    literal_segments: int = field(repr=False)
    _segment_kinds: tuple[int, ...] = field(repr=False)
    _pattern: re.Pattern[str] = field(repr=False)
    _param_names: tuple[str, ...] = field(repr=False)

    @classmethod
    def _build(cls, operation_id: str, method: str, template: str, responses: Mapping[str, Any]) -> Operation:
        regex_parts: list[str] = []
        kinds: list[int] = []
        names: list[str] = []
        for segment in template.split("/"):
            params = _PARAM_RE.findall(segment)
            kinds.append(1 if params else 0)
            names.extend(param[1:-1] for param in params)
            pieces = _PARAM_RE.split(segment)
            regex_parts.append("([^/]+)".join(re.escape(piece) for piece in pieces))
        return cls(
            operation_id=operation_id,
            method=method.upper(),
            path=template,
            responses=responses,
            literal_segments=kinds.count(0) - 1,  # the leading "" before the first "/" is not a segment
            _segment_kinds=tuple(kinds),
            _pattern=re.compile("/".join(regex_parts)),
            _param_names=tuple(names),
        )

    def bind(self, path: str) -> dict[str, str] | None:
        """Path parameters of a concrete request path, or ``None`` if the template does not match."""
        found = self._pattern.fullmatch(_strip_query(path))
        if found is None:
            return None
        return dict(zip(self._param_names, found.groups(), strict=True))

    def _precedence(self) -> tuple[int, tuple[int, ...]]:
        # More literal segments first; on a tie, the template whose first parameter comes later.
        return (-self.literal_segments, self._segment_kinds)


class SwaggerContract:
    """A loaded Swagger 2.0 document: operations, path matching and response validation."""

    def __init__(self, document: Mapping[str, Any], source: str = "<memory>") -> None:
        if document.get("swagger") != "2.0":
            raise ValueError(f"{source}: not a Swagger 2.0 document")
        self.source = source
        self.document = document
        self.definitions: Mapping[str, Schema] = document.get("definitions", {})
        self._operations: dict[str, Operation] = {}
        for template, item in document.get("paths", {}).items():
            for method, spec in item.items():
                if method.lower() not in HTTP_METHODS:
                    continue
                operation_id = spec.get("operationId") or f"{method.upper()} {template}"
                if operation_id in self._operations:
                    raise ValueError(f"{source}: duplicate operationId {operation_id!r}")
                self._operations[operation_id] = Operation._build(
                    operation_id, method, template, spec.get("responses", {})
                )
        self._check_schemas()

    @property
    def version(self) -> str:
        """The document's API version (info.version): 2021-04-30, 2023-01-01, ..."""
        return str(self.document.get("info", {}).get("version", ""))

    @classmethod
    def load(cls, path: str | pathlib.Path) -> SwaggerContract:
        file = pathlib.Path(path)
        with file.open(encoding="utf-8") as handle:
            document = json.load(handle)
        if not isinstance(document, dict):
            raise ValueError(f"{file}: top level is not a JSON object")
        return cls(document, source=str(file))

    # ----------------------------------------------------------------------------------- lookup

    @property
    def operations(self) -> Mapping[str, Operation]:
        return self._operations

    def operation(self, operation_id: str) -> Operation:
        try:
            return self._operations[operation_id]
        except KeyError:
            raise KeyError(f"{operation_id!r} is not an operation of {self.source}") from None

    def match(self, method: str, path: str) -> Operation | None:
        """The operation serving ``method path``; the most literal template wins."""
        wanted = method.upper()
        candidates = [op for op in self._operations.values() if op.method == wanted and op.bind(path) is not None]
        if not candidates:
            return None
        return min(candidates, key=Operation._precedence)  # min() keeps document order on ties

    # ------------------------------------------------------------------------------- validation

    def validate_response(self, operation_id: str, status: int, body: object) -> None:
        """Raise :class:`ContractViolation` listing every way ``body`` breaks the contract."""
        operation = self.operation(operation_id)
        key = "200" if status == 200 else "default"
        response = operation.responses.get(key)
        if response is None:
            raise ContractViolation(operation_id, status, [Problem("", f"the operation declares no {key!r} response")])
        schema: Schema = response.get("schema", {"type": "object"})
        checker = _Checker(self)
        if status == 200:
            checker.check_root(body, schema)
        else:
            checker.check_error_root(body, schema)
        if checker.problems:
            raise ContractViolation(operation_id, status, checker.problems)

    # --------------------------------------------------------------------------- load checks

    def resolve(self, schema: Schema) -> tuple[Schema, str | None]:
        """Follow a ``$ref`` chain; return the target schema and the last definition's name."""
        name: str | None = None
        seen: list[str] = []
        while "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/definitions/"):
                raise ValueError(f"{self.source}: unsupported $ref {ref!r}")
            name = ref.removeprefix("#/definitions/")
            if name in seen:
                raise ValueError(f"{self.source}: $ref cycle {' -> '.join([*seen, name])}")
            seen.append(name)
            try:
                schema = self.definitions[name]
            except KeyError:
                raise ValueError(f"{self.source}: $ref to unknown definition {name!r}") from None
        return schema, name

    def _check_schemas(self) -> None:
        for where, schema in self._all_schemas():
            unknown = {
                key
                for key in schema
                if key not in _SUPPORTED_KEYWORDS and key not in _IGNORED_KEYWORDS and not key.startswith("x-")
            }
            if unknown:
                raise ValueError(f"{self.source}: {where} uses unsupported keywords {sorted(unknown)}")
            declared = schema.get("type")
            if declared is not None and declared not in _KNOWN_TYPES:
                raise ValueError(f"{self.source}: {where} has unknown type {declared!r}")
            if "$ref" in schema:
                self.resolve(schema)

    def _all_schemas(self) -> Iterator[tuple[str, Schema]]:
        stack: list[tuple[str, Schema]] = [(f"definitions/{name}", schema) for name, schema in self.definitions.items()]
        for operation in self._operations.values():
            for code, response in operation.responses.items():
                if "schema" in response:
                    stack.append((f"{operation.operation_id} response {code}", response["schema"]))
        while stack:
            where, schema = stack.pop()
            if not isinstance(schema, Mapping):
                raise ValueError(f"{self.source}: {where} is not a schema object")
            yield where, schema
            for name, sub in schema.get("properties", {}).items():
                stack.append((f"{where}.{name}", sub))
            if isinstance(schema.get("additionalProperties"), Mapping):
                stack.append((f"{where}{{*}}", schema["additionalProperties"]))
            if "items" in schema:
                stack.append((f"{where}[]", schema["items"]))


# ------------------------------------------------------------------------------------ checker


def _strip_query(path: str) -> str:
    return path.split("#", 1)[0].split("?", 1)[0]


def _pointer(parent: str, token: str | int) -> str:
    return f"{parent}/{str(token).replace('~', '~0').replace('/', '~1')}"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_map(schema: Schema) -> bool:
    return not schema.get("properties") and _has_additional(schema)


def _has_additional(schema: Schema) -> bool:
    extra = schema.get("additionalProperties")
    return extra is True or isinstance(extra, Mapping)


def _schema_type(schema: Schema) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    return None


class _Checker:
    def __init__(self, contract: SwaggerContract) -> None:
        self.contract = contract
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # roots

    def check_root(self, body: object, schema: Schema) -> None:
        self.check(body, schema, "", root=True)

    def check_error_root(self, body: object, schema: Schema) -> None:
        self.check(body, schema, "", root=True, error_root=True)
        if not isinstance(body, dict):
            return
        code = body.get("code")
        if type(code) is int and code == 0:
            self.fail(_pointer("", "code"), "code 0 is OK, not an error; send the gRPC code of the failure")
        if _ERROR_KEY not in body:
            return  # reported as missing by _check_object
        error = body[_ERROR_KEY]
        path = _pointer("", _ERROR_KEY)
        if error is None:
            self.fail(path, "null is not allowed; omit the key instead")
        elif not isinstance(error, str):
            self.fail(path, f"expected string, got {_json_type(error)}")
        elif isinstance(body.get("message"), str) and error != body["message"]:
            self.fail(path, f"must repeat message {body['message']!r}, got {error!r}")

    # generic

    def check(self, value: object, schema: Schema, path: str, *, root: bool = False, error_root: bool = False) -> None:
        if value is None:
            self.fail(path, "null is not allowed; omit the key instead")
            return
        resolved, name = self.contract.resolve(schema)
        label = name or "inline schema"
        if "enum" in resolved:
            self._check_enum(value, resolved, label, path)
            return
        kind = _schema_type(resolved)
        if kind is None:
            self._check_no_nulls(value, path)
        elif kind == "object":
            self._check_object(value, resolved, name, path, root=root, error_root=error_root)
        elif kind == "array":
            self._check_array(value, resolved, path)
        else:
            self._check_scalar(value, resolved, kind, path)

    def _check_enum(self, value: object, schema: Schema, label: str, path: str) -> None:
        names = schema["enum"]
        if not isinstance(value, str):
            self.fail(path, f"expected one of the {label} names (a string), got {_json_type(value)} {value!r}")
        elif value not in names:
            self.fail(path, f"{value!r} is not a {label} value (expected one of {', '.join(names)})")

    def _check_array(self, value: object, schema: Schema, path: str) -> None:
        if not isinstance(value, list):
            self.fail(path, f"expected array, got {_json_type(value)}")
            return
        items: Schema = schema.get("items", {})
        for index, item in enumerate(value):
            self.check(item, items, _pointer(path, index))

    def _check_no_nulls(self, value: object, path: str) -> None:
        if value is None:
            self.fail(path, "null is not allowed; omit the key instead")
        elif isinstance(value, dict):
            for key, item in value.items():
                self._check_no_nulls(item, _pointer(path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._check_no_nulls(item, _pointer(path, index))

    def _check_scalar(self, value: object, schema: Schema, kind: str, path: str) -> None:
        fmt = schema.get("format")
        if fmt in _INT64_FORMATS and kind in {"string", "integer"}:
            self._check_int64(value, fmt, path)
        elif kind == "string":
            if not isinstance(value, str):
                self.fail(path, f"expected string, got {_json_type(value)}")
            elif fmt == "date-time":
                self._check_date_time(value, path)
            elif fmt == "byte":
                self._check_base64(value, path)
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, f"expected integer ({fmt or 'no format'}) as a JSON number, got {_json_type(value)}")
            elif isinstance(fmt, str) and fmt in _INT_RANGES:
                low, high = _INT_RANGES[fmt]
                if not low <= value <= high:
                    self.fail(path, f"{value} is out of {fmt} range")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(path, f"expected number, got {_json_type(value)}")
        elif kind == "boolean" and not isinstance(value, bool):
            self.fail(path, f"expected boolean, got {_json_type(value)}")

    def _check_int64(self, value: object, fmt: str, path: str) -> None:
        if not isinstance(value, str):
            self.fail(path, f"{fmt} must be sent as a JSON string of decimal digits, got {_json_type(value)}")
        elif not _INT64_RE.fullmatch(value):
            self.fail(path, f"{value!r} is not a canonical decimal {fmt}")
        else:
            low, high = _INT_RANGES[fmt]
            if not low <= int(value) <= high:
                self.fail(path, f"{value} is out of {fmt} range")

    def _check_date_time(self, value: str, path: str) -> None:
        if value == "":
            self.fail(path, "empty string is not a date-time (clients read it as the epoch); omit the key")
            return
        found = _DATE_TIME_RE.fullmatch(value)
        if found is None:
            self.fail(path, f"{value!r} is not an RFC 3339 UTC date-time ending in 'Z'")
            return
        try:
            moment = dt.datetime(
                int(found["year"]),
                int(found["month"]),
                int(found["day"]),
                int(found["hour"]),
                int(found["minute"]),
                int(found["second"]),
                tzinfo=dt.UTC,
            )
        except ValueError as exc:
            self.fail(path, f"{value!r} is not a valid date-time ({exc})")
            return
        fraction = int(found["fraction"] or "0")
        if moment.year == 1:
            self.fail(path, f"{value!r} is Go's zero time; omit the key")
        elif moment == dt.datetime(1970, 1, 1, tzinfo=dt.UTC) and fraction == 0:
            self.fail(path, f"{value!r} is the Unix epoch (an unset timestamp); omit the key")

    def _check_base64(self, value: str, path: str) -> None:
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            self.fail(path, "expected base64 (format: byte)")

    # objects

    def _check_object(
        self,
        value: object,
        schema: Schema,
        name: str | None,
        path: str,
        *,
        root: bool,
        error_root: bool,
    ) -> None:
        if not isinstance(value, dict):
            self.fail(path, f"expected object, got {_json_type(value)}")
            return
        label = name or "inline object"
        properties: Mapping[str, Schema] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        bare = not properties and not _has_additional(schema)
        if bare and not root:
            self._check_no_nulls(value, path)  # nested free-form object, e.g. an opaque location
            return

        required = self._required_keys(schema, name, root=root)
        if error_root:
            required |= _ERROR_REQUIRED
        for key in sorted(required - value.keys()):
            self.fail(_pointer(path, key), f"required by {label} but missing (send it even when empty)")

        for key, item in value.items():
            where = _pointer(path, key)
            if key in properties:
                before = len(self.problems)
                self.check(item, properties[key], where)
                if len(self.problems) == before and not (error_root and key == "code"):
                    self._check_not_zero(item, properties[key], where)
            elif isinstance(extra, Mapping):
                self.check(item, extra, where)
            elif extra is True:
                self._check_no_nulls(item, where)
            elif error_root and key == _ERROR_KEY:
                continue  # checked by check_error_root
            elif bare:
                self.fail(where, f"{label} has no properties: this response body must be {{}}")
            else:
                self.fail(where, f"not a property of {label}")

    def _required_keys(self, schema: Schema, name: str | None, *, root: bool) -> set[str]:
        required = {key for key in schema.get("required", []) if isinstance(key, str)}
        if name is not None:
            required |= ALWAYS_PRESENT_ARRAYS.get(name, frozenset())
            required |= ALWAYS_PRESENT_FIELDS.get(name, frozenset())
        for key, sub in schema.get("properties", {}).items():
            resolved, sub_name = self.contract.resolve(sub)
            if _schema_type(resolved) == "array" and (
                root or sub.get("x-omitempty") is False or resolved.get("x-omitempty") is False
            ):
                required.add(key)
            if sub_name in ALWAYS_PRESENT_ENUMS:
                required.add(key)
        return required

    def _check_not_zero(self, value: object, schema: Schema, path: str) -> None:
        """Present scalars must not carry their zero value: grpc-gateway omits those."""
        resolved, name = self.contract.resolve(schema)
        if "enum" in resolved:
            if name not in MEANINGFUL_ZERO_ENUMS and resolved["enum"] and value == resolved["enum"][0]:
                self.fail(path, f"{value!r} is the zero value of {name or 'the enum'}; omit the key")
            return
        kind = _schema_type(resolved)
        fmt = resolved.get("format")
        if fmt in _INT64_FORMATS and kind in {"string", "integer"}:
            zero = value == "0"
        elif kind == "string":
            zero = value == ""
        elif kind in {"integer", "number"}:
            zero = value == 0
        elif kind == "boolean":
            zero = value is False
        elif kind == "object" and _is_map(resolved):
            zero = value == {}
            if zero:
                self.fail(path, "empty map; omit the key")
            return
        else:
            return
        if zero:
            self.fail(path, f"zero value {json.dumps(value)} must be omitted")
