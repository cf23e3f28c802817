"""The part of Bitbucket Data Center's REST API the Bitbucket provider uses, as an OpenAPI 3.0 document for the
fake to validate requests with.

Atlassian publishes no machine-readable description of Data Center's API that is available here, so this one
was WRITTEN BY HAND FROM ATLASSIAN'S PUBLIC DOCUMENTATION (the Data Center REST reference's Builds and Deployments,
Insights and Pull Requests groups, the "How to add code insights to pull requests" and "Updating build status for
commits" guides): operations, parameters, required fields, enums and the documented limits (a report's title and
annotation messages, six data fields, a comment's 32,768 characters). Paths are below the REST root ``/rest``.
Bodies are closed (``additionalProperties: false``) so a Cloud-shaped field sent to Data Center fails the test.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DC_SPEC"]

_REPO = "/projects/{projectKey}/repos/{repositorySlug}"
_INSIGHTS = f"/insights/1.0{_REPO}/commits/{{commitId}}/reports"
_PR = f"/api/1.0{_REPO}/pull-requests/{{pullRequestId}}"


def _path(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def _query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


_PAGING = [_query("start", {"type": "integer", "minimum": 0}), _query("limit", {"type": "integer", "minimum": 1})]
_REPO_PARAMS = [_path("projectKey"), _path("repositorySlug")]
_COMMIT = [*_REPO_PARAMS, _path("commitId")]
_REPORT = [*_COMMIT, _path("key")]
_PR_PARAMS = [*_REPO_PARAMS, _path("pullRequestId", "integer")]
_COMMENT = [*_PR_PARAMS, _path("commentId", "integer")]


def _body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _op(op_id: str, params: list[dict[str, Any]], body: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "parameters": params}
    if body:
        op["requestBody"] = _body(body)
    return op


_SCHEMAS: dict[str, Any] = {
    "RestSetInsightReportRequest": {
        "type": "object", "required": ["title"], "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 450},
            "details": {"type": "string", "maxLength": 2000},
            "result": {"type": "string", "enum": ["PASS", "FAIL"]},
            "reporter": {"type": "string", "maxLength": 450},
            "link": {"type": "string"},
            "logoUrl": {"type": "string"},
            "createdDate": {"type": "integer"},
            "data": {"type": "array", "maxItems": 6, "items": {"$ref": "#/components/schemas/RestInsightReportData"}},
        },
    },
    "RestInsightReportData": {
        "type": "object", "required": ["title", "type", "value"], "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "maxLength": 450},
            "type": {"type": "string", "enum": ["BOOLEAN", "DATE", "DURATION", "LINK", "NUMBER", "PERCENTAGE",
                                               "TEXT"]},
            "value": {},
        },
    },
    "RestInsightAnnotationsRequest": {
        "type": "object", "required": ["annotations"], "additionalProperties": False,
        "properties": {"annotations": {"type": "array", "minItems": 1,
                                       "items": {"$ref": "#/components/schemas/RestSingleAddInsightAnnotationRequest"}}},
    },
    "RestSingleAddInsightAnnotationRequest": {
        "type": "object", "required": ["message", "severity"], "additionalProperties": False,
        "properties": {
            "externalId": {"type": "string", "maxLength": 450},
            "line": {"type": "integer", "minimum": 0},
            "link": {"type": "string"},
            "message": {"type": "string", "minLength": 1, "maxLength": 2000},
            "path": {"type": "string"},
            "severity": {"type": "string", "enum": ["LOW", "MEDIUM", "HIGH"]},
            "type": {"type": "string", "enum": ["VULNERABILITY", "CODE_SMELL", "BUG"]},
        },
    },
    "RestBuildStatusSetRequest": {
        "type": "object", "required": ["key", "state", "url"], "additionalProperties": False,
        "properties": {
            "key": {"type": "string", "minLength": 1, "maxLength": 255},
            "state": {"type": "string", "enum": ["SUCCESSFUL", "FAILED", "INPROGRESS", "CANCELLED", "UNKNOWN"]},
            "url": {"type": "string", "minLength": 1, "maxLength": 450},
            "name": {"type": "string", "maxLength": 255},
            "description": {"type": "string", "maxLength": 255},
            "ref": {"type": "string"},
            "parent": {"type": "string"},
            "buildNumber": {"type": "string"},
            "duration": {"type": "integer"},
            "lastUpdated": {"type": "integer"},
            "testResults": {"type": "object", "additionalProperties": False,
                            "properties": {k: {"type": "integer", "minimum": 0}
                                           for k in ("successful", "failed", "skipped")}},
        },
    },
    "LegacyBuildStatus": {
        "type": "object", "required": ["key", "state", "url"], "additionalProperties": False,
        "properties": {
            "key": {"type": "string", "minLength": 1}, "url": {"type": "string", "minLength": 1},
            "state": {"type": "string", "enum": ["SUCCESSFUL", "FAILED", "INPROGRESS"]},
            "name": {"type": "string"}, "description": {"type": "string"},
        },
    },
    "RestCommentCreate": {
        "type": "object", "required": ["text"], "additionalProperties": False,
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 32768}},
    },
    "RestCommentEdit": {
        "type": "object", "required": ["text", "version"], "additionalProperties": False,
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 32768},
                       "version": {"type": "integer", "minimum": 0}},
    },
}

DC_SPEC: dict[str, Any] = {
    "openapi": "3.0.1",
    "info": {"title": "Bitbucket Data Center (subset written from the public REST documentation)", "version": "8"},
    "paths": {
        f"/api/1.0{_REPO}": {"get": _op("repo-get", _REPO_PARAMS)},
        f"{_INSIGHTS}": {"get": _op("report-list", [*_COMMIT, *_PAGING])},
        f"{_INSIGHTS}/{{key}}": {
            "put": _op("report-put", _REPORT, "RestSetInsightReportRequest"),
            "get": _op("report-get", _REPORT),
            "delete": _op("report-delete", _REPORT),
        },
        f"{_INSIGHTS}/{{key}}/annotations": {
            "post": _op("annotations-post", _REPORT, "RestInsightAnnotationsRequest"),
            "get": _op("annotations-list", _REPORT),
            "delete": _op("annotations-delete", [*_REPORT, _query("externalId", {"type": "array",
                                                                                 "items": {"type": "string"}})]),
        },
        f"/api/latest{_REPO}/commits/{{commitId}}/builds": {
            "post": _op("build-post", _COMMIT, "RestBuildStatusSetRequest"),
            "get": _op("build-list", [*_COMMIT, *_PAGING, _query("key", {"type": "string"})]),
        },
        "/build-status/1.0/commits/{commitId}": {
            "post": _op("legacy-build-post", [_path("commitId")], "LegacyBuildStatus"),
            "get": _op("legacy-build-list", [_path("commitId"), *_PAGING]),
        },
        f"{_PR}/activities": {"get": _op("activity-list", [*_PR_PARAMS, *_PAGING])},
        f"{_PR}/comments": {"post": _op("comment-post", _PR_PARAMS, "RestCommentCreate")},
        f"{_PR}/comments/{{commentId}}": {
            "get": _op("comment-get", _COMMENT),
            "put": _op("comment-put", _COMMENT, "RestCommentEdit"),
            "delete": _op("comment-delete", [*_COMMENT, _query("version", {"type": "integer"}, required=True)]),
        },
    },
    "components": {"schemas": _SCHEMAS},
}
