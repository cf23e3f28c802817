"""The provider catalog: one line of plain data per provider, and every list of provider facts derived from it.

A provider's facts (its name, where its implementation lives, its settings type, how its credentials are found
and bound, whether it hosts code, which environment variables belong to it) are written here once. The
configuration (names, ``[providers.<name>]`` tables), the credential lookup, the session's environment filter,
``ci-sidecar doctor`` and the provider registry all read them from :data:`CATALOG`; none keeps its own list.

This module imports nothing of the project: the configuration, the credential lookup and the CI detection all
read it, and the implementation named by a line is imported only when a session first needs it (a daemon that
only serves ``local`` never imports an HTTP stack).

Adding a provider is one line in :data:`CATALOG` (see docs/providers.md for the rest of the recipe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CATALOG",
    "CredentialKind",
    "CredentialSpec",
    "ProviderSpec",
    "by_name",
    "ci_names",
    "code_host_names",
    "env_prefixes",
    "implemented",
    "token_env_names",
]

#: how a provider sends its credential (informative for doctor and the docs; the provider's HTTP layer does it)
AuthKind = Literal["bearer", "token", "basic", "header", "aws-sigv4", "none"]


@dataclass(frozen=True)
class CredentialKind:
    """A second credential a provider uses for some writes, found in the job's environment only.

    GitHub's artifact uploads carry the Actions runtime token (``ACTIONS_RUNTIME_TOKEN``), bound to the origin of
    ``ACTIONS_RESULTS_URL``, instead of the REST token.
    """

    #: the credential's name in a session (``Credential.provider``) and in journaled references
    kind: str
    #: the variable holding the secret
    env: str
    #: the variable holding the URL it is bound to (only its origin is used)
    url_env: str
    #: which writes carry it instead of the provider's token
    used_for: Literal["artifacts"] = "artifacts"


@dataclass(frozen=True)
class CredentialSpec:
    """Where a provider's token comes from and where it may be sent."""

    #: standard token variables, most specific first (a configured ``token_env`` is tried before them)
    env: tuple[str, ...] = ()
    #: file names under ``$CREDENTIALS_DIRECTORY`` (a configured ``credential`` is tried first); empty: ``<name>-token``
    files: tuple[str, ...] = ()
    #: variables a CI exports next to its own token with its API's URL (binds tokens from that same environment)
    url_env: tuple[str, ...] = ()
    #: the public API; None: self-hosted only (Jenkins, TeamCity), the base URL must be configured
    default_url: str | None = None
    auth: tuple[AuthKind, ...] = ("bearer",)
    #: Basic auth: the user name's variable and credential file (a token without its user is not usable)
    username_env: str | None = None
    username_file: str | None = None
    #: the token variables and credential files that are Basic passwords needing the user name (empty: every
    #: one); the others are used alone (Bitbucket: ``BITBUCKET_TOKEN`` is a Bearer token, ``BITBUCKET_APP_PASSWORD``
    #: goes with ``BITBUCKET_USERNAME``)
    basic_sources: tuple[str, ...] = ()
    #: further credentials some writes carry instead of the token
    kinds: tuple[CredentialKind, ...] = ()


@dataclass(frozen=True)
class ProviderSpec:
    """One provider, as plain data."""

    name: str
    #: ``"module:Class"`` of the implementation; None: detected and configurable, but no provider in this version
    #: (its writes answer -31007 and go to the local output folder only)
    impl: str | None = None
    #: ``"module:Class"`` of its :class:`~ci_sidecar.providers.settings.ProviderSettings` subclass (None: the base)
    settings: str | None = None
    credentials: CredentialSpec = field(default_factory=CredentialSpec)
    #: ``ci``: a CI system a session can run on; ``store``: artifacts only (the ``[artifact_store]``); ``local``;
    #: ``notify``: the notification channels (``[notifications]``)
    role: Literal["ci", "store", "local", "notify"] = "ci"
    #: hosts repositories and pull requests (statuses and PR comments can go there)
    code_host: bool = False
    #: environment variables belonging to this CI (kept from a session's environment, scrubbed by tests)
    env_prefixes: tuple[str, ...] = ()
    #: the web host of an API host named ``<api_host_prefix><host>`` (``api.github.com`` → ``github.com``)
    api_host_prefix: str | None = None

    @property
    def credential_files(self) -> tuple[str, ...]:
        """The credential file names tried under ``$CREDENTIALS_DIRECTORY`` (after a configured one)."""
        return self.credentials.files or (f"{self.name}-token",)


CATALOG: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        "github", "ci_sidecar.providers.github:GitHubProvider", "ci_sidecar.providers.github.settings:GitHubSettings",
        code_host=True, api_host_prefix="api.",
        credentials=CredentialSpec(
            ("GITHUB_TOKEN", "GH_TOKEN"), url_env=("GITHUB_API_URL",), default_url="https://api.github.com",
            kinds=(CredentialKind("github-actions-runtime", "ACTIONS_RUNTIME_TOKEN", "ACTIONS_RESULTS_URL"),)),
        env_prefixes=("GITHUB_", "GH_", "RUNNER_", "ACTIONS_")),
    ProviderSpec(
        "gitlab", "ci_sidecar.providers.gitlab:GitLabProvider", "ci_sidecar.providers.gitlab.settings:GitLabSettings",
        code_host=True,
        credentials=CredentialSpec(("GITLAB_TOKEN", "CI_JOB_TOKEN"), url_env=("CI_API_V4_URL",),
                                   default_url="https://gitlab.com/api/v4", auth=("header", "bearer")),
        env_prefixes=("GITLAB_", "CI_")),
    ProviderSpec(
        "jenkins", "ci_sidecar.providers.jenkins:JenkinsProvider",
        "ci_sidecar.providers.jenkins.settings:JenkinsSettings",
        credentials=CredentialSpec(("JENKINS_TOKEN",), url_env=("JENKINS_URL",), auth=("basic",),
                                   username_env="JENKINS_USER", username_file="jenkins-user"),
        env_prefixes=("JENKINS_", "BUILD_", "JOB_", "CHANGE_", "BRANCH_", "GIT_", "TAG_NAME", "WORKSPACE", "ghprb",
                      "gitlab")),
    ProviderSpec(
        "azure", "ci_sidecar.providers.azure:AzureProvider", "ci_sidecar.providers.azure.settings:AzureSettings",
        code_host=True,
        credentials=CredentialSpec(("AZURE_DEVOPS_TOKEN", "SYSTEM_ACCESSTOKEN"), url_env=("SYSTEM_COLLECTIONURI",),
                                   default_url="https://dev.azure.com", auth=("bearer", "basic")),
        env_prefixes=("TF_", "SYSTEM_", "BUILD_", "AGENT_", "AZURE_")),
    ProviderSpec(
        "circleci", "ci_sidecar.providers.circleci:CircleCIProvider",
        "ci_sidecar.providers.circleci.settings:CircleCISettings",
        credentials=CredentialSpec(("CIRCLE_TOKEN",), default_url="https://circleci.com/api/v2", auth=("header",)),
        env_prefixes=("CIRCLE",)),
    ProviderSpec(
        "teamcity", "ci_sidecar.providers.teamcity:TeamCityProvider",
        "ci_sidecar.providers.teamcity.settings:TeamCitySettings",
        credentials=CredentialSpec(("TEAMCITY_TOKEN",)), env_prefixes=("TEAMCITY_", "BUILD_VCS_", "BUILD_")),
    ProviderSpec(
        "travis", "ci_sidecar.providers.travis:TravisProvider", "ci_sidecar.providers.travis.settings:TravisSettings",
        credentials=CredentialSpec(("TRAVIS_TOKEN",), default_url="https://api.travis-ci.com", auth=("token",)),
        env_prefixes=("TRAVIS",)),
    ProviderSpec(
        "bitbucket", "ci_sidecar.providers.bitbucket:BitbucketProvider",
        "ci_sidecar.providers.bitbucket.settings:BitbucketSettings", code_host=True, api_host_prefix="api.",
        credentials=CredentialSpec(("BITBUCKET_TOKEN", "BITBUCKET_APP_PASSWORD"),
                                   default_url="https://api.bitbucket.org/2.0", auth=("bearer", "basic"),
                                   username_env="BITBUCKET_USERNAME", username_file="bitbucket-username",
                                   files=("bitbucket-token", "bitbucket-app-password"),
                                   basic_sources=("BITBUCKET_APP_PASSWORD", "bitbucket-app-password")),
        env_prefixes=("BITBUCKET_",)),
    ProviderSpec("local", "ci_sidecar.providers.local:LocalProvider", role="local"),
    ProviderSpec(
        "s3", "ci_sidecar.providers.s3:S3Provider", "ci_sidecar.providers.s3:S3Settings", role="store",
        credentials=CredentialSpec(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
                                   files=("s3-access-key-id", "s3-secret-access-key", "s3-session-token"),
                                   auth=("aws-sigv4",))),
    ProviderSpec("notify", "ci_sidecar.providers.notify:NotifyProvider", role="notify",
                 credentials=CredentialSpec(auth=("none",))),
)


def by_name(name: str) -> ProviderSpec | None:
    """The catalog line of *name*, or None."""
    return next((spec for spec in CATALOG if spec.name == name), None)


def ci_names() -> tuple[str, ...]:
    """Every provider a session can name as its CI (``provider``), ``local`` included, in catalog order."""
    return tuple(s.name for s in CATALOG if s.role not in ("store", "notify"))


def code_host_names() -> tuple[str, ...]:
    """Providers that host code (a session's ``scm_provider``)."""
    return tuple(s.name for s in CATALOG if s.code_host)


def implemented() -> dict[str, str]:
    """Name → ``"module:Class"`` of every provider this version has."""
    return {s.name: s.impl for s in CATALOG if s.impl is not None}


def token_env_names() -> frozenset[str]:
    """Every standard token (and user name) variable of every CI provider."""
    names: set[str] = set()
    for spec in CATALOG:
        if spec.role in ("store", "notify"):
            continue  # the object store's keys are read once, at session start, and never kept
        cred = spec.credentials
        names.update(cred.env)
        names.update(k.env for k in cred.kinds)
        names.update(k.url_env for k in cred.kinds)
        if cred.username_env:
            names.add(cred.username_env)
    return frozenset(names)


def env_prefixes() -> tuple[str, ...]:
    """Every provider's environment prefixes, once each, in catalog order."""
    return tuple(dict.fromkeys(p for spec in CATALOG for p in spec.env_prefixes))
