"""GitLab's Packages API list operations, for the fake GitLab to validate requests with where the official spec
it was given has no such operation.

The GitLab spec subset (``gitlab/openapi_v2.ci-subset.json``) covers the generic package upload and download
but not ``GET /projects/:id/packages`` nor ``GET /projects/:id/packages/:package_id/package_files``, which the
provider reads to find a package file an interrupted upload may have stored. These two operations are WRITTEN BY
HAND FROM GITLAB'S PUBLIC DOCUMENTATION (doc/api/packages.md: "List packages — within a project", "List package
files"), with its parameters, types and enums, in the OpenAPI 3.0 terms the fakes validate with. When the full
official ``openapi_v2`` file is used instead of the subset and describes them, its own descriptions are used.
"""

from __future__ import annotations

import functools
from typing import Any

from .spec import OpenApiSpec

__all__ = ["PACKAGES_PATHS", "with_packages_api"]

_PREFIX = "/api/v4/projects/{id}/packages"


def _param(name: str, where: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema}


def _sort(order_by: list[str]) -> list[dict[str, Any]]:
    return [_param("order_by", "query", {"type": "string", "enum": order_by}),
            _param("sort", "query", {"type": "string", "enum": ["asc", "desc"]}),
            _param("page", "query", {"type": "integer", "minimum": 1}),
            _param("per_page", "query", {"type": "integer", "minimum": 1})]


_PACKAGE_TYPES = ["composer", "conan", "generic", "golang", "helm", "maven", "npm", "nuget", "pypi",
                  "terraform_module", "ml_model"]
_STATUSES = ["default", "hidden", "processing", "error", "pending_destruction", "deprecated"]

#: the two operations, by path template below the API root
PACKAGES_PATHS: dict[str, Any] = {
    _PREFIX: {"get": {
        "operationId": "getApiV4ProjectsIdPackages", "summary": "List packages within a project",
        "parameters": [
            _param("id", "path", {"type": "string"}),
            *_sort(["created_at", "name", "version", "type"]),
            _param("package_type", "query", {"type": "string", "enum": _PACKAGE_TYPES}),
            _param("package_name", "query", {"type": "string"}),
            _param("package_version", "query", {"type": "string"}),
            _param("include_versionless", "query", {"type": "boolean"}),
            _param("status", "query", {"type": "string", "enum": _STATUSES}),
        ]}},
    _PREFIX + "/{package_id}/package_files": {"get": {
        "operationId": "getApiV4ProjectsIdPackagesPackageIdPackageFiles", "summary": "List package files",
        "parameters": [
            _param("id", "path", {"type": "string"}),
            _param("package_id", "path", {"type": "integer"}),
            *_sort(["id", "file_name", "created_at"]),
        ]}},
}


@functools.lru_cache(maxsize=4)
def with_packages_api(spec: OpenApiSpec) -> OpenApiSpec:
    """``spec`` plus the operations of :data:`PACKAGES_PATHS` it does not describe itself."""
    paths = dict(spec.doc.get("paths", {}))
    missing = {path: item for path, item in PACKAGES_PATHS.items()
               if not any(spec.match(method, path.replace("{id}", "7").replace("{package_id}", "1"))
                          for method in item)}
    if not missing:
        return spec
    return OpenApiSpec({**spec.doc, "paths": {**paths, **missing}})
