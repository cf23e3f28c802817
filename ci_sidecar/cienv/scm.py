"""Detects the code host (scm) from clone URLs and host names, independently of the CI.

Recognised: github.com and GitHub Enterprise (``github.*`` hosts, ``*.ghe.com``), gitlab.com and
self-managed GitLab (``gitlab.*`` hosts), bitbucket.org and Bitbucket Data Center (``/scm/`` clone paths,
``bitbucket.*`` hosts, SSH port 7999), Azure Repos (dev.azure.com, ``*.visualstudio.com``, any
``/_git/`` path of Azure DevOps Server). Hosts that match none of these are recognised only through
*hosts* (hostname -> provider, e.g. from configured base URLs).

Credentials embedded in a clone URL (``https://x-access-token:TOKEN@github.com/...``) are never copied:
only the host and the repository path are kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from ci_sidecar.protocol.records import ScmContext

__all__ = ["Remote", "parse_remote", "scm_from_remote", "scm_from_host", "host_of"]

SCM_PROVIDERS = ("github", "gitlab", "bitbucket", "azure")

# scp-like syntax: [user@]host:path (no scheme, the colon comes before any slash)
_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/\[\]]+|\[[^\]]+\]):(?P<path>(?!//).*)$")


class Remote(NamedTuple):
    """A clone URL reduced to what scm detection needs."""

    scheme: str  # "https", "http", "ssh", "git"
    host: str  # lower case, no credentials
    port: int | None
    path: str  # without leading/trailing slashes and without ".git"


def parse_remote(url: str) -> Remote | None:
    """Parse https/ssh/git and scp-like clone URLs; None for local paths and anything unparseable."""
    url = url.strip()
    if not url:
        return None
    if "://" in url:
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower().removeprefix("git+")
        if scheme not in {"https", "http", "ssh", "git"} or not host:
            return None
        return Remote(scheme, host.lower(), port, _clean_path(parts.path))
    match = _SCP.match(url)
    if match is None or len(match["host"]) == 1:  # "C:\repo" is a Windows path, not a host
        return None
    return Remote("ssh", match["host"].strip("[]").lower(), None, _clean_path(match["path"]))


def _clean_path(path: str) -> str:
    path = path.strip("/")
    return path[:-4] if path.endswith(".git") else path


def host_of(url: str | None) -> str | None:
    """The lower-case host name of an http(s) URL."""
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.lower() if host else None


def scm_from_host(host: str, hosts: Mapping[str, str] | None = None) -> str | None:
    """Which code host *host* is, from *hosts* first, then well-known names and naming conventions."""
    host = host.lower()
    if hosts and host in hosts:
        return hosts[host]
    if host in {"github.com", "ssh.github.com", "www.github.com"} or host.endswith(".ghe.com"):
        return "github"
    if host in {"gitlab.com", "www.gitlab.com"}:
        return "gitlab"
    if host in {"bitbucket.org", "www.bitbucket.org", "altssh.bitbucket.org"}:
        return "bitbucket"
    if host in {"dev.azure.com", "ssh.dev.azure.com", "vs-ssh.visualstudio.com"} or host.endswith(".visualstudio.com"):
        return "azure"
    first_label = host.split(".")[0]
    for name in ("github", "gitlab", "bitbucket"):
        # Self-hosted instances are conventionally named github.corp.example, gitlab.example.com...
        if first_label == name or first_label.startswith(name + "-") or first_label.endswith("-" + name):
            return name
    return None


def scm_from_remote(url: str, hosts: Mapping[str, str] | None = None) -> ScmContext | None:
    """The code host, repository and web server URL behind a clone URL; None when it is not recognised."""
    remote = parse_remote(url)
    if remote is None or not remote.path:
        return None
    segments = [s for s in remote.path.split("/") if s]
    if "_git" in segments or remote.host in {"ssh.dev.azure.com", "vs-ssh.visualstudio.com"}:
        return _azure(remote, segments)
    provider = scm_from_host(remote.host, hosts)
    if provider is None and (_bitbucket_dc_path(remote, segments) or remote.port == 7999):
        provider = "bitbucket"
    if provider is None:
        return None
    server = _web_origin(remote)
    if provider == "azure":
        return _azure(remote, segments)
    if provider == "bitbucket" and remote.host not in {"bitbucket.org", "altssh.bitbucket.org", "www.bitbucket.org"}:
        # Bitbucket Data Center: https://host[/context]/scm/PROJ/repo.git or ssh://git@host:7999/PROJ/repo.git
        if "scm" in segments:
            idx = segments.index("scm")
            context = "/".join(segments[:idx])
            server = server + ("/" + context if context else "")
            segments = segments[idx + 1 :]
        elif "projects" in segments and "repos" in segments[segments.index("projects"):]:
            # a web URL: host[/context]/projects/PROJ/repos/repo/pull-requests/7 (Jenkins' CHANGE_URL)
            idx, at = segments.index("projects"), segments.index("repos", segments.index("projects"))
            context = "/".join(segments[:idx])
            server = server + ("/" + context if context else "")
            segments = segments[idx + 1 : idx + 2] + segments[at + 1 : at + 2]
        return ScmContext(provider="bitbucket", repository="/".join(segments[:2]) or None, server_url=server)
    if provider == "bitbucket":
        return ScmContext(provider="bitbucket", repository="/".join(segments[:2]), server_url="https://bitbucket.org")
    if provider == "github":
        if remote.host in {"ssh.github.com", "www.github.com"}:
            server = "https://github.com"
        return ScmContext(provider="github", repository="/".join(segments[:2]) if len(segments) >= 2 else None,
                          server_url=server)
    if provider == "gitlab":
        # GitLab keeps subgroups in the path; web paths end with "/-/..." (merge_requests, tree...).
        if "-" in segments:
            segments = segments[: segments.index("-")]
        return ScmContext(provider="gitlab", repository="/".join(segments) or None, server_url=server)
    return ScmContext(provider=provider, repository="/".join(segments) or None, server_url=server)


def _bitbucket_dc_path(remote: Remote, segments: list[str]) -> bool:
    return remote.scheme in {"http", "https"} and "scm" in segments[:-2]


def _web_origin(remote: Remote) -> str:
    if remote.scheme in {"http", "https"}:
        default = 443 if remote.scheme == "https" else 80
        port = f":{remote.port}" if remote.port and remote.port != default else ""
        return f"{remote.scheme}://{remote.host}{port}"
    return f"https://{remote.host}"


def _azure(remote: Remote, segments: list[str]) -> ScmContext | None:
    """Azure Repos: dev.azure.com/org/project/_git/repo, org.visualstudio.com/[coll/]project/_git/repo,
    ssh.dev.azure.com:v3/org/project/repo, Azure DevOps Server host/tfs/Collection/project/_git/repo."""
    if remote.host in {"ssh.dev.azure.com", "vs-ssh.visualstudio.com"}:
        if len(segments) != 4 or segments[0] != "v3":
            return None
        _, org, project, repo = segments
        server = f"https://dev.azure.com/{org}" if remote.host == "ssh.dev.azure.com" else f"https://{org}.visualstudio.com"
        return ScmContext(provider="azure", repository=f"{project}/{repo}", server_url=server)
    if "_git" not in segments:
        return None
    idx = segments.index("_git")
    before, after = segments[:idx], segments[idx + 1 :]
    if not after:
        return None
    repo = after[0]
    if remote.host == "dev.azure.com":
        if not before:
            return None
        collection, project = before[:1], (before[1] if len(before) > 1 else repo)
    elif len(before) >= 1:
        collection, project = before[:-1], before[-1]
    else:  # project omitted: it has the repository's name
        collection, project = [], repo
    if remote.host.endswith(".visualstudio.com") and collection and collection[0].lower() == "defaultcollection":
        collection = []
    server = _web_origin(remote) + "".join("/" + c for c in collection)
    return ScmContext(provider="azure", repository=f"{project}/{repo}", server_url=server)
