"""Code host detection from clone URLs: github.com/GHE, gitlab.com/self-managed, Bitbucket Cloud/DC, Azure Repos."""

from __future__ import annotations

import pytest

from ci_sidecar.cienv.scm import parse_remote, scm_from_remote

CASES = [
    # GitHub and GitHub Enterprise
    ("https://github.com/octo/widgets.git", ("github", "octo/widgets", "https://github.com")),
    ("git@github.com:octo/widgets.git", ("github", "octo/widgets", "https://github.com")),
    ("ssh://git@ssh.github.com:443/octo/widgets.git", ("github", "octo/widgets", "https://github.com")),
    ("https://x-access-token:ghs_abc@github.com/octo/widgets", ("github", "octo/widgets", "https://github.com")),
    ("https://github.corp.example/team/svc.git", ("github", "team/svc", "https://github.corp.example")),
    ("git@github.corp.example:team/svc.git", ("github", "team/svc", "https://github.corp.example")),
    ("https://acme.ghe.com/team/svc", ("github", "team/svc", "https://acme.ghe.com")),
    # GitLab and self-managed GitLab (subgroups kept)
    ("https://gitlab.com/grp/sub/app.git", ("gitlab", "grp/sub/app", "https://gitlab.com")),
    ("git@gitlab.com:grp/sub/app.git", ("gitlab", "grp/sub/app", "https://gitlab.com")),
    ("https://gitlab.corp.example:8443/grp/app.git", ("gitlab", "grp/app", "https://gitlab.corp.example:8443")),
    ("https://gitlab.corp.example/grp/app/-/merge_requests/4", ("gitlab", "grp/app", "https://gitlab.corp.example")),
    # Bitbucket Cloud and Data Center
    ("git@bitbucket.org:team/widgets.git", ("bitbucket", "team/widgets", "https://bitbucket.org")),
    ("https://user@bitbucket.org/team/widgets.git", ("bitbucket", "team/widgets", "https://bitbucket.org")),
    ("https://bitbucket.corp.example/scm/PROJ/repo.git", ("bitbucket", "PROJ/repo", "https://bitbucket.corp.example")),
    ("https://code.corp.example/bitbucket/scm/PROJ/repo.git",
     ("bitbucket", "PROJ/repo", "https://code.corp.example/bitbucket")),
    ("ssh://git@code.corp.example:7999/PROJ/repo.git", ("bitbucket", "PROJ/repo", "https://code.corp.example")),
    # Azure Repos and Azure DevOps Server
    ("https://contoso@dev.azure.com/contoso/Fabrikam/_git/web", ("azure", "Fabrikam/web", "https://dev.azure.com/contoso")),
    ("https://dev.azure.com/contoso/_git/web", ("azure", "web/web", "https://dev.azure.com/contoso")),
    ("git@ssh.dev.azure.com:v3/contoso/Fabrikam/web", ("azure", "Fabrikam/web", "https://dev.azure.com/contoso")),
    ("https://contoso.visualstudio.com/DefaultCollection/Fabrikam/_git/web",
     ("azure", "Fabrikam/web", "https://contoso.visualstudio.com")),
    ("contoso@vs-ssh.visualstudio.com:v3/contoso/Fabrikam/web", ("azure", "Fabrikam/web", "https://contoso.visualstudio.com")),
    ("https://tfs.corp.example/tfs/Main/Fabrikam/_git/web", ("azure", "Fabrikam/web", "https://tfs.corp.example/tfs/Main")),
]


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_scm_from_remote(url: str, expected: tuple[str, str, str]) -> None:
    """Each clone URL maps to its code host, repository path and web origin."""
    scm = scm_from_remote(url)
    assert scm is not None
    assert (scm.provider, scm.repository, scm.server_url) == expected


@pytest.mark.parametrize("url", [
    "/srv/git/app.git", "file:///srv/git/app.git", "C:\\src\\app", "", "https://git.corp.example/team/app.git",
    "https://github.com:notaport/x/y",
])
def test_unknown_or_local_is_none(url: str) -> None:
    """Local paths and hosts without a known convention are not guessed."""
    assert scm_from_remote(url) is None


def test_configured_hosts_recognise_unconventional_names() -> None:
    """A configured host name maps to its provider (e.g. GitHub Enterprise at code.corp.example)."""
    scm = scm_from_remote("git@code.corp.example:team/app.git", {"code.corp.example": "github"})
    assert scm is not None and (scm.provider, scm.repository) == ("github", "team/app")


def test_credentials_never_survive_parsing() -> None:
    """User info in a clone URL is not part of any parsed value."""
    remote = parse_remote("https://oauth2:glpat-SECRET@gitlab.com/grp/app.git")
    scm = scm_from_remote("https://oauth2:glpat-SECRET@gitlab.com/grp/app.git")
    assert remote is not None and "SECRET" not in repr(remote)
    assert "SECRET" not in repr(scm)
