"""Tests for the Swagger response validator: every rule is shown to accept and to reject."""

from __future__ import annotations

import copy
import json
import pathlib
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from . import validator
from .validator import (
    ALWAYS_PRESENT_ARRAYS,
    ALWAYS_PRESENT_ENUMS,
    ALWAYS_PRESENT_FIELDS,
    MEANINGFUL_ZERO_ENUMS,
    ContractViolation,
    SwaggerContract,
    spec_dir,
)

PACKER_FILE = "packer-service-2021-04-30.swagger.json"
RESOURCE_MANAGER_FILE = "resource-manager-2019-12-10.swagger.json"

ORG = "8a2b3c4d-1111-4222-8333-944455556666"
PROJECT = "0f1e2d3c-aaaa-4bbb-8ccc-ddddeeeeffff"
PREFIX = f"/packer/2021-04-30/organizations/{ORG}/projects/{PROJECT}"
RM = "/resource-manager/2019-12-10"
TS = "2023-01-01T00:00:00.000Z"
BUCKET_ID = "01H2ZQ6V2W5K7QXJ8B3N4M5P6R"
ITERATION_ID = "01H2ZQ7A0000000000000000IT"
BUILD_ID = "01H2ZQ7B0000000000000000BD"

Body = dict[str, Any]


@pytest.fixture(scope="module")
def packer() -> SwaggerContract:
    return SwaggerContract.load(spec_dir() / PACKER_FILE)


@pytest.fixture(scope="module")
def resource_manager() -> SwaggerContract:
    return SwaggerContract.load(spec_dir() / RESOURCE_MANAGER_FILE)


# ------------------------------------------------------------------------------ sample bodies


def image() -> Body:
    return {
        "id": "01H2ZQ7C0000000000000000IM",
        "image_id": "ami-0abc",
        "region": "us-east-1",
        "created_at": TS,
    }


def build(*, status: str = "DONE") -> Body:
    return {
        "id": BUILD_ID,
        "iteration_id": ITERATION_ID,
        "component_type": "amazon-ebs.ubuntu",
        "packer_run_uuid": "5c1f6a0e-2b3c-4d5e-8f90-a1b2c3d4e5f6",
        "images": [image()],
        "cloud_provider": "aws",
        "status": status,
        "created_at": TS,
        "updated_at": TS,
        "labels": {"os": "ubuntu"},
    }


def bucket() -> Body:
    return {
        "id": BUCKET_ID,
        "slug": "ubuntu",
        "location": {"organization_id": ORG, "project_id": PROJECT},
        "latest_iteration": {
            "id": ITERATION_ID,
            "bucket_slug": "ubuntu",
            "incremental_version": 1,
            "complete": True,
            "author_id": "ci@example.com",
            "created_at": TS,
            "updated_at": TS,
            "fingerprint": "f00d",
            "builds": [build()],
        },
        "latest_version": 1,
        "created_at": TS,
        "updated_at": TS,
        "platforms": ["aws"],
        "description": "Ubuntu base image",
        "labels": {"team": "platform"},
        "iteration_count": "3",
        "parents": {"href": f"{PREFIX}/images/ubuntu/ancestry?type=parents", "status": "UNDETERMINED"},
        "children": {"status": "UP_TO_DATE"},
    }


def get_bucket() -> Body:
    return {"bucket": bucket()}


def list_buckets() -> Body:
    return {"buckets": [bucket()], "pagination": {"next_page_token": "b2Zmc2V0PTE"}}


def create_build() -> Body:
    return {"build": build()}


def error_body(code: int = 5, message: str = "bucket not found") -> Body:
    return {"code": code, "message": message, "details": [], "error": message}


def problems(contract: SwaggerContract, operation_id: str, status: int, body: object) -> dict[str, str]:
    """Validate a body expected to be wrong; return the problems as {pointer: message}."""
    with pytest.raises(ContractViolation) as caught:
        contract.validate_response(operation_id, status, body)
    violation = caught.value
    assert violation.operation_id == operation_id
    assert violation.problems, "a ContractViolation must carry at least one problem"
    return {problem.path: problem.message for problem in violation.problems}


def at(body: Body, pointer: str) -> tuple[Any, str]:
    """The container and final key/index that ``pointer`` addresses inside ``body``."""
    *parents, last = pointer.lstrip("/").split("/")
    node: Any = body
    for token in parents:
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node, last


def with_value(body: Body, pointer: str, value: object) -> Body:
    result = copy.deepcopy(body)
    node, last = at(result, pointer)
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return result


def without(body: Body, pointer: str) -> Body:
    result = copy.deepcopy(body)
    node, last = at(result, pointer)
    del node[last]
    return result


# ------------------------------------------------------------------------------------ loading


def test_spec_dir_defaults_to_shared_beside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PACKYARD_SPEC_DIR", raising=False)
    repo = pathlib.Path(validator.__file__).resolve().parents[2]
    assert spec_dir() == repo.parent / "shared" / "spec" / "hcp"


def test_spec_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("PACKYARD_SPEC_DIR", str(tmp_path))
    assert spec_dir() == tmp_path


def test_packer_document_loads_every_operation(packer: SwaggerContract) -> None:
    assert len(packer.operations) == 28
    get_bucket_op = packer.operation("PackerService_GetBucket")
    assert get_bucket_op.method == "GET"
    assert get_bucket_op.path.endswith("/projects/{location.project_id}/images/{bucket_slug}")
    assert packer.operation("PackerService_CreateBucket").method == "PUT"


def test_newer_packer_document_loads_too() -> None:
    newer = SwaggerContract.load(spec_dir() / "packer-service-2023-01-01.swagger.json")
    assert len(newer.operations) == 52
    assert newer.match("GET", f"/packer/2023-01-01/organizations/{ORG}/projects/{PROJECT}/buckets") is not None


def test_unknown_operation_is_a_key_error(packer: SwaggerContract) -> None:
    with pytest.raises(KeyError, match="PackerService_Nope"):
        packer.operation("PackerService_Nope")
    with pytest.raises(KeyError, match="PackerService_Nope"):
        packer.validate_response("PackerService_Nope", 200, {})


def test_resource_manager_document_loads_with_the_same_code(resource_manager: SwaggerContract) -> None:
    assert len(resource_manager.operations) == 35
    assert resource_manager.operation("OrganizationService_List").path == f"{RM}/organizations"
    assert resource_manager.operation("ProjectService_List").method == "GET"


def write_document(tmp_path: pathlib.Path, definitions: Body, root: str) -> pathlib.Path:
    document = {
        "swagger": "2.0",
        "info": {"title": "synthetic", "version": "1"},
        "paths": {
            "/things/{id}": {
                "get": {
                    "operationId": "Things_Get",
                    "responses": {
                        "200": {"description": "ok", "schema": {"$ref": f"#/definitions/{root}"}},
                        "default": {"description": "error", "schema": {"$ref": "#/definitions/Status"}},
                    },
                }
            }
        },
        "definitions": {
            "Status": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer", "format": "int32"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object"}},
                },
            },
            **definitions,
        },
    }
    path = tmp_path / "synthetic.swagger.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("definitions", "error"),
    [
        ({"Root": {"type": "object", "properties": {"a": {"$ref": "#/definitions/Missing"}}}}, "Missing"),
        ({"Root": {"$ref": "#/definitions/Loop"}, "Loop": {"$ref": "#/definitions/Root"}}, "cycle"),
        ({"Root": {"type": "object", "allOf": [{"type": "object"}]}}, "allOf"),
        ({"Root": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}}, "minimum"),
        ({"Root": {"type": "tuple"}}, "tuple"),
    ],
    ids=["dangling-ref", "ref-cycle", "allOf", "minimum", "unknown-type"],
)
def test_load_refuses_what_it_cannot_check(tmp_path: pathlib.Path, definitions: Body, error: str) -> None:
    path = write_document(tmp_path, definitions, "Root")
    with pytest.raises(ValueError, match=error):
        SwaggerContract.load(path)


def test_load_refuses_a_non_swagger_document(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps({"openapi": "3.0.0", "paths": {}}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"Swagger 2\.0"):
        SwaggerContract.load(str(path))


def test_special_cases_name_real_definitions_and_arrays(packer: SwaggerContract) -> None:
    packer_2023 = SwaggerContract.load(spec_dir() / "packer-service-2023-01-01.swagger.json")
    definitions = {**packer.definitions, **packer_2023.definitions}
    for name, keys in ALWAYS_PRESENT_ARRAYS.items():
        properties = definitions[name]["properties"]
        for key in keys:
            assert properties[key]["type"] == "array", f"{name}.{key}"
    for name, keys in ALWAYS_PRESENT_FIELDS.items():
        assert keys <= definitions[name]["properties"].keys(), name
    for name in MEANINGFUL_ZERO_ENUMS | ALWAYS_PRESENT_ENUMS:
        assert "enum" in definitions[name], name


# ----------------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("method", "suffix", "expected"),
    [
        ("PATCH", "/runtasks/hmac", "PackerService_RegenerateTFCRunTaskHmacKey"),
        ("GET", "/runtasks/validation", "PackerService_GetRegistryTFCRunTaskAPI"),
        ("GET", "/runtasks/hmac", "PackerService_GetRegistryTFCRunTaskAPI"),
        ("POST", f"/images/ubuntu/iterations/{ITERATION_ID}", "PackerService_CreateBuild"),
        ("GET", f"/images/ubuntu/iterations/{ITERATION_ID}/builds", "PackerService_ListBuilds"),
        ("POST", "/images/ubuntu/iterations", "PackerService_CreateIteration"),
        ("GET", "/images/ubuntu/iterations?pagination.page_size=10", "PackerService_ListIterations"),
        ("GET", "/images/ubuntu/iteration?fingerprint=f00d", "PackerService_GetIteration"),
        ("GET", "/images/foo/channels/bar", "PackerService_GetChannel"),
        ("get", "/images/foo/channels/bar/history", "PackerService_ListChannelHistory"),
        ("PUT", "/images", "PackerService_CreateBucket"),
        ("DELETE", "/images/ubuntu", "PackerService_DeleteBucket"),
        ("PATCH", f"/iterations/{ITERATION_ID}", "PackerService_UpdateIteration"),
        ("GET", f"/builds/{BUILD_ID}", "PackerService_GetBuild"),
        ("DELETE", "/registry?hard_delete=true", "PackerService_DeleteRegistry"),
        ("POST", "/images/ubuntu", None),
        ("GET", f"/images/ubuntu/iterations/{ITERATION_ID}", None),
        ("GET", f"/iterations/{ITERATION_ID}", None),
        ("GET", "/images/ubuntu/", None),
        ("GET", "/images/ubuntu/channels/bar/history/extra", None),
    ],
)
def test_match_maps_concrete_paths(packer: SwaggerContract, method: str, suffix: str, expected: str | None) -> None:
    found = packer.match(method, PREFIX + suffix)
    assert (found.operation_id if found else None) == expected


def test_match_outside_the_prefix_is_none(packer: SwaggerContract) -> None:
    assert packer.match("GET", "/packer/2023-01-01/organizations/o/projects/p/buckets") is None
    assert packer.match("GET", "/images/ubuntu") is None


def test_bind_extracts_path_parameters(packer: SwaggerContract) -> None:
    operation = packer.operation("PackerService_CreateBuild")
    assert operation.bind(f"{PREFIX}/images/ubuntu/iterations/{ITERATION_ID}") == {
        "location.organization_id": ORG,
        "location.project_id": PROJECT,
        "bucket_slug": "ubuntu",
        "iteration_id": ITERATION_ID,
    }
    assert operation.bind(f"{PREFIX}/images/ubuntu/iterations/{ITERATION_ID}/builds") is None


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", f"{RM}/organizations", "OrganizationService_List"),
        ("GET", f"{RM}/organizations/{ORG}", "OrganizationService_Get"),
        ("GET", f"{RM}/organizations/{ORG}/roles", "OrganizationService_ListRoles"),
        ("GET", f"{RM}/organizations/{ORG}/constraints", "OrganizationService_ListConstraints"),
        ("GET", f"{RM}/projects?scope.type=ORGANIZATION&scope.id={ORG}", "ProjectService_List"),
        ("GET", f"{RM}/projects/count", "ProjectService_GetProjectsCount"),
        ("GET", f"{RM}/projects/{PROJECT}", "ProjectService_Get"),
        ("PATCH", f"{RM}/projects/{PROJECT}", None),
    ],
)
def test_match_in_the_resource_manager(
    resource_manager: SwaggerContract, method: str, path: str, expected: str | None
) -> None:
    found = resource_manager.match(method, path)
    assert (found.operation_id if found else None) == expected


# ------------------------------------------------------------------------------- valid bodies


@pytest.mark.parametrize(
    ("operation_id", "make_body"),
    [
        ("PackerService_GetBucket", get_bucket),
        ("PackerService_GetBucket", lambda: {"bucket": {"id": BUCKET_ID, "slug": "empty", "platforms": []}}),
        ("PackerService_ListBuckets", list_buckets),
        ("PackerService_ListBuckets", lambda: {"buckets": []}),
        ("PackerService_ListBuckets", lambda: {"buckets": [], "pagination": {}}),
        ("PackerService_CreateBuild", create_build),
        ("PackerService_CreateBuild", lambda: {"build": {**build(status="UNSET"), "images": []}}),
        ("PackerService_DeleteBucket", dict),
        ("PackerService_ListBuilds", lambda: {"builds": []}),
        ("PackerService_ListChannels", lambda: {"channels": []}),
        ("PackerService_ListIterations", lambda: {"iterations": [{"id": ITERATION_ID, "complete": True}]}),
        ("PackerService_ListChannelHistory", lambda: {"history": [], "count": 2}),
        ("PackerService_ListBucketAncestry", lambda: {"relations": [{"status": "UNDETERMINED"}]}),
        (
            "PackerService_GetRegistry",
            lambda: {
                "registry": {
                    "id": "01H2ZQ8R0000000000000000RG",
                    "config": {
                        "feature_tier": "PLUS",
                        "billing_deprovision": {"at": TS, "reason": "DELINQUENT_BILLING_ACCOUNT"},
                    },
                }
            },
        ),
        (
            "PackerService_GetChannel",
            lambda: {
                "channel": {
                    "slug": "latest",
                    "managed": True,
                    "iteration": {"id": ITERATION_ID, "builds": [build()], "template_type": "HCL2"},
                    "pointer": {"iteration": {"id": ITERATION_ID, "builds": []}, "created_at": TS},
                }
            },
        ),
        (
            "PackerService_UpdateRegistry",
            lambda: {
                "operation": {
                    "id": "op-1",
                    "state": "DONE",
                    "error": {"code": 13, "message": "boom", "details": []},
                }
            },
        ),
    ],
)
def test_valid_success_bodies_pass(packer: SwaggerContract, operation_id: str, make_body: Callable[[], Body]) -> None:
    body = make_body()
    packer.validate_response(operation_id, 200, body)
    assert body == make_body(), "validation must not modify the body"


def test_nested_operation_error_must_not_carry_the_error_key(packer: SwaggerContract) -> None:
    body = {"operation": {"id": "op-1", "state": "DONE", "error": error_body(13, "boom")}}
    # error_body() includes "error", which google.rpc.Status only tolerates at the root of an error body
    found = problems(packer, "PackerService_DeleteRegistry", 200, body)
    assert "not a property" in found["/operation/error/error"]


def test_valid_error_body_passes(packer: SwaggerContract) -> None:
    packer.validate_response("PackerService_GetBucket", 404, error_body())
    packer.validate_response(
        "PackerService_CreateBucket",
        409,
        {
            "code": 6,
            "message": "bucket already exists",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "DUPLICATE"}],
            "error": "bucket already exists",
        },
    )


# ----------------------------------------------------------------------------------- violations

Mutation = Callable[[Body], object]


class Case(NamedTuple):
    operation_id: str
    base: Body
    mutate: Mutation
    pointer: str
    fragment: str

    @property
    def status(self) -> int:
        return 404 if "code" in self.base else 200


def setting(operation_id: str, base: Body, pointer: str, value: object, fragment: str) -> Case:
    return Case(operation_id, base, lambda body: with_value(body, pointer, value), pointer, fragment)


def removing(operation_id: str, base: Body, pointer: str, fragment: str) -> Case:
    return Case(operation_id, base, lambda body: without(body, pointer), pointer, fragment)


def in_bucket(pointer: str, value: object, fragment: str) -> Case:
    return setting("PackerService_GetBucket", get_bucket(), f"/bucket{pointer}", value, fragment)


def created_at(value: object, fragment: str) -> Case:
    return in_bucket("/created_at", value, fragment)


LATEST = "/latest_iteration"
LATEST_BUILD = "/latest_iteration/builds/0"
GET_BUCKET = "PackerService_GetBucket"
CREATE_BUILD = "PackerService_CreateBuild"
NEW_ITERATION: Body = {"iteration": {"id": ITERATION_ID, "builds": []}}

VIOLATIONS: dict[str, Case] = {
    # strict objects
    "undeclared-root": Case(GET_BUCKET, get_bucket(), lambda b: {**b, "extra": 1}, "/extra", "not a property"),
    "undeclared-nested": in_bucket("/name", "x", "not a property of hashicorp.cloud.packer.Bucket"),
    "undeclared-deep": in_bucket(
        f"{LATEST_BUILD}/images/0/arch", "x86", "not a property of hashicorp.cloud.packer.Image"
    ),
    "delete-not-empty": Case("PackerService_DeleteBucket", {}, lambda b: {"bucket": {}}, "/bucket", "must be {}"),
    "error-key-on-success": Case(GET_BUCKET, get_bucket(), lambda b: {**b, "error": "x"}, "/error", "not a property"),
    # JSON types
    "root-not-object": Case(GET_BUCKET, get_bucket(), lambda b: [b], "", "expected object, got array"),
    "string-as-number": in_bucket("/slug", 7, "expected string, got integer"),
    "bool-as-int32": in_bucket("/latest_version", True, "got boolean"),
    "int32-as-string": in_bucket("/latest_version", "1", "got string"),
    "int32-as-float": in_bucket("/latest_version", 1.0, "got number"),
    "int32-overflow": in_bucket("/latest_version", 2**31, "out of int32 range"),
    "int64-as-number": in_bucket("/iteration_count", 3, "JSON string"),
    "int64-not-digits": in_bucket("/iteration_count", "3.0", "not a canonical decimal int64"),
    "int64-leading-zero": in_bucket("/iteration_count", "03", "not a canonical"),
    "int64-overflow": in_bucket("/iteration_count", str(2**63), "out of int64 range"),
    "bool-as-string": in_bucket(f"{LATEST}/complete", "true", "expected boolean"),
    "array-as-object": in_bucket("/platforms", {"aws": True}, "expected array"),
    "array-item-type": in_bucket("/platforms/0", 1, "expected string"),
    "map-value-type": in_bucket("/labels/team", 1, "expected string"),
    "object-as-string": in_bucket("/location", ORG, "expected object"),
    # enums
    "enum-unknown": setting(
        CREATE_BUILD,
        create_build(),
        "/build/status",
        "SUCCEEDED",
        "not a hashicorp.cloud.packer.BuildStatus value",
    ),
    "enum-as-number": setting(CREATE_BUILD, create_build(), "/build/status", 2, "(a string)"),
    "enum-zero-tier": setting(
        "PackerService_GetRegistry",
        {"registry": {"config": {"feature_tier": "STANDARD"}}},
        "/registry/config/feature_tier",
        "UNSET",
        "zero value of hashicorp.cloud.packer.RegistryConfig.Tier",
    ),
    "enum-zero-template": setting(
        "PackerService_CreateIteration",
        NEW_ITERATION,
        "/iteration/template_type",
        "TEMPLATE_TYPE_UNSET",
        "zero value",
    ),
    "enum-zero-revocation": setting(
        "PackerService_GetIteration", NEW_ITERATION, "/iteration/revocation_type", "UNSET", "zero value"
    ),
    "enum-zero-operation": setting(
        "PackerService_UpdateRegistry",
        {"operation": {"id": "op-1"}},
        "/operation/state",
        "PENDING",
        "zero value of hashicorp.cloud.operation.Operation.State",
    ),
    "enum-zero-history": setting(
        "PackerService_ListChannelHistory",
        {"history": [{"iteration": {"id": ITERATION_ID}}]},
        "/history/0/iteration/status",
        "ITERATION_UNSET",
        "zero value",
    ),
    # omitted zero values
    "zero-string": in_bucket("/description", "", "zero value"),
    "zero-int32": in_bucket("/latest_version", 0, "zero value 0"),
    "zero-int64": in_bucket("/iteration_count", "0", 'zero value "0"'),
    "zero-bool": in_bucket(f"{LATEST}/complete", False, "zero value false"),
    "zero-map": in_bucket("/labels", {}, "empty map"),
    "zero-token": setting("PackerService_ListBuckets", list_buckets(), "/pagination/next_page_token", "", "zero value"),
    # date-time
    "time-empty": created_at("", "empty string"),
    "time-go-zero": created_at("0001-01-01T00:00:00.000Z", "Go's zero time"),
    "time-epoch": created_at("1970-01-01T00:00:00Z", "epoch"),
    "time-epoch-millis": in_bucket("/updated_at", "1970-01-01T00:00:00.000Z", "epoch"),
    "time-offset": created_at("2023-01-01T00:00:00+00:00", "ending in 'Z'"),
    "time-no-zone": created_at("2023-01-01T00:00:00", "RFC 3339"),
    "time-lowercase": created_at("2023-01-01t00:00:00z", "RFC 3339"),
    "time-ten-digits": created_at("2023-01-01T00:00:00.0123456789Z", "RFC 3339"),
    "time-date-only": created_at("2023-01-01", "RFC 3339"),
    "time-bad-month": created_at("2023-13-01T00:00:00Z", "not a valid date-time"),
    "time-unix-number": created_at(1672531200, "expected string"),
    "time-deep": in_bucket(f"{LATEST_BUILD}/images/0/created_at", "", "empty string"),
    # arrays that must always be present
    "missing-platforms": removing(
        GET_BUCKET, get_bucket(), "/bucket/platforms", "required by hashicorp.cloud.packer.Bucket"
    ),
    "missing-latest-builds": removing(
        GET_BUCKET,
        get_bucket(),
        f"/bucket{LATEST}/builds",
        "required by hashicorp.cloud.packer.BucketLatestIteration",
    ),
    "missing-latest-build-images": removing(
        GET_BUCKET,
        get_bucket(),
        f"/bucket{LATEST_BUILD}/images",
        "required by hashicorp.cloud.packer.LatestIterationBuild",
    ),
    "missing-build-images": removing(
        CREATE_BUILD, create_build(), "/build/images", "required by hashicorp.cloud.packer.Build"
    ),
    "missing-iteration-builds": removing(
        "PackerService_GetChannel",
        {"channel": {"iteration": {"id": ITERATION_ID, "builds": []}}},
        "/channel/iteration/builds",
        "required by hashicorp.cloud.packer.Iteration",
    ),
    "missing-buckets": removing(
        "PackerService_ListBuckets",
        list_buckets(),
        "/buckets",
        "required by hashicorp.cloud.packer.ListBucketsResponse",
    ),
    "missing-iterations": removing("PackerService_ListIterations", {"iterations": []}, "/iterations", "required"),
    "missing-builds": removing("PackerService_ListBuilds", {"builds": []}, "/builds", "required"),
    "missing-channels": removing("PackerService_ListChannels", {"channels": []}, "/channels", "required"),
    "missing-history": removing("PackerService_ListChannelHistory", {"history": []}, "/history", "required"),
    "missing-relations": removing("PackerService_ListBucketAncestry", {"relations": []}, "/relations", "required"),
    "missing-nested-status-details": removing(
        "PackerService_UpdateRegistry",
        {"operation": {"error": {"code": 13, "message": "x", "details": []}}},
        "/operation/error/details",
        "required by google.rpc.Status",
    ),
    "missing-build-status": removing(
        CREATE_BUILD, create_build(), "/build/status", "required by hashicorp.cloud.packer.Build"
    ),
    "missing-latest-build-status": removing(GET_BUCKET, get_bucket(), f"/bucket{LATEST_BUILD}/status", "required"),
    # null anywhere
    "null-root": Case(GET_BUCKET, get_bucket(), lambda b: None, "", "null"),
    "null-property": in_bucket(LATEST, None, "null"),
    "null-time": in_bucket(f"{LATEST}/revoke_at", None, "null"),
    "null-array": in_bucket("/platforms", None, "null"),
    "null-array-item": in_bucket("/platforms/0", None, "null"),
    "null-map-value": in_bucket("/labels/team", None, "null"),
    "null-in-any": Case(
        GET_BUCKET,
        error_body(),
        lambda b: {**b, "details": [{"@type": "type.googleapis.com/x.Y", "meta": {"k": None}}]},
        "/details/0/meta/k",
        "null",
    ),
}


@pytest.mark.parametrize("case", list(VIOLATIONS.values()), ids=list(VIOLATIONS))
def test_each_violation_is_reported_at_its_path(packer: SwaggerContract, case: Case) -> None:
    packer.validate_response(case.operation_id, case.status, case.base)  # the unmutated body is valid
    found = problems(packer, case.operation_id, case.status, case.mutate(case.base))
    assert case.pointer in found, found
    assert case.fragment in found[case.pointer]
    assert len(found) == 1, found


@pytest.mark.parametrize(
    "value",
    [
        "2023-01-01T00:00:00Z",
        "2023-01-01T12:34:56.7Z",
        "2023-06-30T23:59:59.123Z",
        "2024-02-29T00:00:00.123456789Z",
        "1970-01-01T00:00:00.001Z",
        "0002-01-01T00:00:00Z",
    ],
)
def test_valid_date_times_pass(packer: SwaggerContract, value: str) -> None:
    packer.validate_response("PackerService_GetBucket", 200, with_value(get_bucket(), "/bucket/created_at", value))


@pytest.mark.parametrize("value", ["1", "9223372036854775807", "-5"])
def test_valid_int64_strings_pass(packer: SwaggerContract, value: str) -> None:
    body = with_value(get_bucket(), "/bucket/iteration_count", value)
    packer.validate_response("PackerService_GetBucket", 200, body)


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("/bucket/latest_iteration/builds/0/status", "UNSET"),
        ("/bucket/parents/status", "UNDETERMINED"),
        ("/bucket/children/status", "UNDETERMINED"),
        ("/bucket/labels/team", ""),
        ("/bucket/platforms", []),
        ("/bucket/latest_iteration/builds/0/images", []),
        ("/bucket/location", {}),
    ],
    ids=[
        "build-status-unset",
        "parents-undetermined",
        "children-undetermined",
        "map-value-empty",
        "platforms-empty",
        "images-empty",
        "nested-object-empty",
    ],
)
def test_zero_values_that_clients_need_are_allowed(packer: SwaggerContract, pointer: str, value: object) -> None:
    packer.validate_response("PackerService_GetBucket", 200, with_value(get_bucket(), pointer, value))


def test_every_problem_is_listed(packer: SwaggerContract) -> None:
    body = get_bucket()
    body["bucket"]["iteration_count"] = 3
    body["bucket"]["labels"] = {}
    del body["bucket"]["platforms"]
    body["bucket"]["latest_iteration"]["builds"][0]["status"] = "BROKEN"
    body["bucket"]["latest_iteration"]["revoke_at"] = "0001-01-01T00:00:00.000Z"
    body["extra"] = None
    with pytest.raises(ContractViolation) as caught:
        packer.validate_response("PackerService_GetBucket", 200, body)
    expected = {
        "/bucket/iteration_count",
        "/bucket/labels",
        "/bucket/platforms",
        "/bucket/latest_iteration/builds/0/status",
        "/bucket/latest_iteration/revoke_at",
        "/extra",
    }
    assert set(caught.value.paths) == expected
    assert isinstance(caught.value, AssertionError)
    text = str(caught.value)
    assert text.startswith("PackerService_GetBucket (HTTP 200): 6 contract violation(s)")
    assert all(path in text for path in expected)


# ---------------------------------------------------------------------------------- error bodies


@pytest.mark.parametrize(
    ("mutate", "pointer", "fragment"),
    [
        (lambda b: without(b, "/error"), "/error", "missing"),
        (lambda b: without(b, "/details"), "/details", "missing"),
        (lambda b: without(b, "/code"), "/code", "missing"),
        (lambda b: without(b, "/message"), "/message", "missing"),
        (lambda b: with_value(b, "/error", "something else"), "/error", "must repeat message"),
        (lambda b: with_value(b, "/error", 5), "/error", "expected string"),
        (lambda b: with_value(b, "/error", None), "/error", "null"),
        (lambda b: with_value(b, "/code", "5"), "/code", "got string"),
        (lambda b: with_value(b, "/code", 0), "/code", "code 0 is OK"),
        (lambda b: with_value(b, "/details", None), "/details", "null"),
        (lambda b: with_value(b, "/details", [{"@type": ""}]), "/details/0/@type", "zero value"),
        (lambda b: {**b, "status": "NOT_FOUND"}, "/status", "not a property of google.rpc.Status"),
    ],
)
def test_error_body_violations(packer: SwaggerContract, mutate: Mutation, pointer: str, fragment: str) -> None:
    found = problems(packer, "PackerService_GetBucket", 404, mutate(error_body()))
    assert pointer in found, found
    assert fragment in found[pointer]


def test_success_body_with_an_error_status_is_rejected(packer: SwaggerContract) -> None:
    found = problems(packer, "PackerService_GetBucket", 500, get_bucket())
    assert "not a property of google.rpc.Status" in found["/bucket"]
    assert {"/code", "/message", "/details", "/error"} <= found.keys()


# ------------------------------------------------------------------------------ resource manager


def organization(**overrides: object) -> Body:
    return {
        "id": ORG,
        "name": "acme",
        "created_at": TS,
        "state": "ACTIVE",
        "owner": {"user": "u-1"},
        **overrides,
    }


def test_resource_manager_lists_validate(resource_manager: SwaggerContract) -> None:
    resource_manager.validate_response("OrganizationService_List", 200, {"organizations": [organization()]})
    resource_manager.validate_response("ProjectService_List", 200, {"projects": [], "pagination": {}})
    resource_manager.validate_response("OrganizationService_Delete", 200, {})


@pytest.mark.parametrize(
    ("operation_id", "body", "pointer", "fragment"),
    [
        ("OrganizationService_List", {}, "/organizations", "required"),
        ("ProjectService_List", {"pagination": {}}, "/projects", "required"),
        (
            "OrganizationService_List",
            {"organizations": [organization(state="UNKNOWN")]},
            "/organizations/0/state",
            "zero value",
        ),
        (
            "OrganizationService_List",
            {"organizations": [organization(tfc_synced=False)]},
            "/organizations/0/tfc_synced",
            "zero value",
        ),
        (
            "OrganizationService_Get",
            {"organization": organization(region="us")},
            "/organization/region",
            "not a property",
        ),
        ("ProjectService_GetProjectsCount", {"count": "2"}, "/count", "got string"),
        ("OrganizationService_Delete", {"ok": True}, "/ok", "must be {}"),
    ],
    ids=[
        "missing-organizations",
        "missing-projects",
        "zero-state",
        "zero-bool",
        "undeclared",
        "int32-as-string",
        "delete-not-empty",
    ],
)
def test_resource_manager_violations(
    resource_manager: SwaggerContract, operation_id: str, body: Body, pointer: str, fragment: str
) -> None:
    found = problems(resource_manager, operation_id, 200, body)
    assert pointer in found, found
    assert fragment in found[pointer]


# ------------------------------------------------------------------------ synthetic documents


def test_recursive_definitions_validate_without_looping(tmp_path: pathlib.Path) -> None:
    node = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}},
        },
    }
    contract = SwaggerContract.load(
        write_document(tmp_path, {"Node": node, "Root": {"$ref": "#/definitions/Node"}}, "Root")
    )
    deep: Body = {"name": "leaf"}
    for level in range(50):
        deep = {"name": f"level-{level}", "children": [deep]}
    contract.validate_response("Things_Get", 200, deep)
    broken = {"name": "top", "children": [{"name": "mid", "children": [{"name": 1}]}]}
    found = problems(contract, "Things_Get", 200, broken)
    assert found == {"/children/0/children/0/name": "expected string, got integer"}


def test_nested_bare_object_allows_extra_keys_but_a_bare_root_must_be_empty(tmp_path: pathlib.Path) -> None:
    definitions = {
        "Root": {
            "type": "object",
            "properties": {"location": {"type": "object"}, "name": {"type": "string"}},
        },
    }
    contract = SwaggerContract.load(write_document(tmp_path, definitions, "Root"))
    contract.validate_response("Things_Get", 200, {"location": {"organization_id": ORG, "region": {"x": 1}}})
    found = problems(contract, "Things_Get", 200, {"location": {"region": None}})
    assert found == {"/location/region": "null is not allowed; omit the key instead"}

    bare_root = SwaggerContract.load(write_document(tmp_path, {"Root": {"type": "object"}}, "Root"))
    bare_root.validate_response("Things_Get", 200, {})
    assert "must be {}" in problems(bare_root, "Things_Get", 200, {"x": 1})["/x"]


def test_x_omitempty_false_and_required_are_honoured(tmp_path: pathlib.Path) -> None:
    definitions = {
        "Item": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}, "x-omitempty": False},
                "notes": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Root": {"type": "object", "properties": {"item": {"$ref": "#/definitions/Item"}}},
    }
    contract = SwaggerContract.load(write_document(tmp_path, definitions, "Root"))
    contract.validate_response("Things_Get", 200, {"item": {"id": "a", "tags": []}})
    found = problems(contract, "Things_Get", 200, {"item": {}})
    assert set(found) == {"/item/id", "/item/tags"}


def test_json_pointer_escapes_keys(tmp_path: pathlib.Path) -> None:
    definitions = {"Root": {"type": "object", "additionalProperties": {"type": "integer", "format": "int32"}}}
    contract = SwaggerContract.load(write_document(tmp_path, definitions, "Root"))
    contract.validate_response("Things_Get", 200, {"a/b": 1, "c~d": 0})
    assert set(problems(contract, "Things_Get", 200, {"a/b": "1", "c~d": True})) == {"/a~1b", "/c~0d"}


def test_match_prefers_literal_segments_whatever_the_document_order(tmp_path: pathlib.Path) -> None:
    templates = [
        "/{kind}/{name}",
        "/runtasks/{task_type}",
        "/runtasks/{task_type}/x",
        "/runtasks/hmac",
        "/runtasks/hmac/{n}",
    ]
    ok = {"200": {"description": "ok", "schema": {"type": "object"}}}
    document = {
        "swagger": "2.0",
        "paths": {template: {"get": {"operationId": template, "responses": ok}} for template in templates},
    }
    path = tmp_path / "order.swagger.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    contract = SwaggerContract.load(path)

    def matched(concrete: str) -> str | None:
        found = contract.match("GET", concrete)
        return found.operation_id if found else None

    assert matched("/runtasks/hmac") == "/runtasks/hmac"
    assert matched("/runtasks/validation") == "/runtasks/{task_type}"
    assert matched("/images/ubuntu") == "/{kind}/{name}"
    # two literal segments each: the template whose first parameter comes later wins
    assert matched("/runtasks/hmac/x") == "/runtasks/hmac/{n}"
    assert matched("/runtasks/other/x") == "/runtasks/{task_type}/x"
    assert contract.operation("/runtasks/hmac").literal_segments == 2
    assert contract.match("POST", "/runtasks/hmac") is None
