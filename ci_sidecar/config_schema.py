"""The configuration's shape: :class:`Config` and its tables, what ``load_config`` returns, its error, and which
keys only the daemon may set. How the sources are read and merged is :mod:`ci_sidecar.config`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ci_sidecar.protocol.errors import SidecarError
from ci_sidecar.providers.catalog import ci_names, code_host_names

__all__ = [
    "DAEMON_ONLY_KEYS",
    "ChannelConfig",
    "HistoryConfig",
    "NotificationsConfig",
    "RuleConfig",
    "PROVIDER_NAMES",
    "ArtifactStoreConfig",
    "Config",
    "ConfigError",
    "LoadedConfig",
    "ProviderConfig",
]

PROVIDER_NAMES = ci_names()
CiProvider = Literal[PROVIDER_NAMES]  # type: ignore[valid-type]  # from the catalog
ScmProvider = Literal[code_host_names() + ("local",)]  # type: ignore[valid-type]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class ProviderConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Per-provider settings: where its API lives, where its token comes from, and the provider's own knobs.

    A ``[providers.<name>]`` table may also set every key the provider's settings type declares in
    ``CONFIG_KEYS`` (:mod:`ci_sidecar.providers.settings`), e.g. ``max_annotations`` for GitHub; they are
    validated against that type and kept in ``options``.
    """

    base_url: str | None = None  # API base URL (GitHub Enterprise, self-managed GitLab, Azure DevOps Server...)
    token_env: str | None = None  # env var holding the token, tried before the standard names
    credential: str | None = None  # file name under $CREDENTIALS_DIRECTORY, tried before "<provider>-token"
    options: dict[str, Any] = {}  # the provider's own knobs, written beside the keys above


MiB = 1024 * 1024


class ArtifactStoreConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An S3-compatible object store for artifacts (AWS S3, MinIO, Ceph RGW...), the ``[artifact_store]`` table.

    Configured when ``bucket`` is set. Credentials never go here: they come from ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` or ``$CREDENTIALS_DIRECTORY/s3-*`` (see
    :mod:`ci_sidecar.providers.s3`). A daemon setting: a session cannot point the daemon's credentials elsewhere.
    """

    bucket: str | None = None
    #: ``https://s3.<region>.amazonaws.com`` when unset
    endpoint_url: str | None = None
    region: str = "us-east-1"
    #: keys are ``<prefix>/<run id>/<artifact name>``
    prefix: str = ""
    #: ``https://host/bucket/key`` instead of ``https://bucket.host/key``; default: on for a custom endpoint
    path_style: bool | None = None
    #: lifetime of presigned GET URLs (S3 allows at most 7 days)
    presign_ttl_s: Annotated[int, msgspec.Meta(gt=0, le=604800)] = 3600
    #: when the bucket (or a CDN in front of it) is public: ``<public_base_url>/<key>``, never expiring
    public_base_url: str | None = None
    #: files larger than this go up as multipart uploads
    multipart_threshold: Annotated[int, msgspec.Meta(ge=5 * MiB)] = 64 * MiB
    #: S3 needs parts of at least 5 MiB (except the last) and at most 10,000 parts
    part_size: Annotated[int, msgspec.Meta(ge=5 * MiB, le=5 * 1024 * MiB)] = 64 * MiB


class HistoryConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The run history, the ``[history]`` table (docs/history.md): every finished run's tests in
    ``<state root>/history.sqlite3``, compared with the base run in every report. A daemon setting."""

    enabled: bool = True
    #: runs of a series whose outcomes decide a test's flaky score
    flaky_window: Annotated[int, msgspec.Meta(ge=2, le=200)] = 20
    #: runs kept (all series together); older ones are deleted
    retention_runs: PositiveInt = 1000
    #: runs older than this are deleted
    retention_days: PositiveFloat = 90.0
    #: how long recording a run waits for another process's write (after a wait in vain, later runs barely wait)
    lock_wait_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 10.0


class ChannelConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One notification channel, ``[notifications.channels.<name>]`` (docs/notifications.md).

    Secrets never go here: a webhook URL (Slack, Teams, generic webhook: the URL is the secret), the webhook's
    signing key and the SMTP password come from the named environment variable (the client's, then the
    daemon's) or file under ``$CREDENTIALS_DIRECTORY``.
    """

    kind: Literal["slack", "teams", "webhook", "email", "code_host"]
    #: slack/teams/webhook: the variable holding the webhook URL, or the credential file holding it
    url_env: str | None = None
    url_credential: str | None = None
    #: webhook: the HMAC-SHA256 signing key's variable or credential file (unsigned without one)
    secret_env: str | None = None
    secret_credential: str | None = None
    #: email: the SMTP server and how to reach it
    smtp_host: str | None = None
    smtp_port: Annotated[int, msgspec.Meta(gt=0, lt=65536)] | None = None
    #: ``starttls`` (default, port 587), ``tls`` (implicit TLS, port 465) or ``none`` (plain, port 25)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    password_env: str | None = None
    password_credential: str | None = None
    #: a CA bundle (PEM) to verify the SMTP server with, besides the system's
    smtp_ca_bundle: str | None = None
    sender: str | None = None
    recipients: list[str] = []
    #: code_host: the commit-status context and the sticky comment's key
    context: str = "ci-sidecar/notify"
    #: linked from every message (else the run's build URL)
    report_url: str | None = None


class RuleConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """When a finished run notifies which channels, ``[[notifications.rules]]``."""

    when: Literal["always", "on_failure", "on_change", "on_fixed"] = "on_failure"
    #: shell-style patterns of the run's branch (``main``, ``release/*``); empty: every branch
    branches: list[str] = []
    channels: list[str] = []


class NotificationsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Channels and the rules evaluated when a run finishes, the ``[notifications]`` table (a daemon setting)."""

    channels: dict[str, ChannelConfig] = {}
    rules: list[RuleConfig] = []


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The daemon's and a session's settings, after merging every source."""

    output_dir: str | None = None
    state_dir: str | None = None
    socket: str | None = None
    provider: CiProvider | None = None  # CI provider override (else detected)
    scm_provider: ScmProvider | None = None  # code host override (else detected)
    comment_mode: Literal["upsert", "create", "replace", "off"] = "upsert"
    idle_timeout_s: NonNegFloat = 0.0  # 0 = never exit when idle
    abandon_timeout_s: PositiveFloat = 21600.0
    flush_timeout_s: PositiveFloat = 60.0  # shutdown's and exec's wait for pending writes (then: kept in state)
    #: for tests and benchmarks against fakes only: multiplies every wait of the delivery (write spacing,
    #: live-update spacing, retry backoff, Retry-After, rate-limit pauses); a real provider needs 1
    delivery_time_scale: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1.0
    #: "client": the session's client prints the CI provider's job-log stream itself (``ci-sidecar exec`` does:
    #: TeamCity's service messages), so the provider does not send it through its API as well
    job_log: Literal["client"] | None = None
    retention_runs: PositiveInt = 1000  # finished runs kept (state and records); older ones are deleted
    retention_days: PositiveFloat = 30.0  # finished runs older than this are deleted
    artifact_max_file_bytes: PositiveInt = 1024 * 1024 * 1024
    artifact_max_run_bytes: PositiveInt = 10 * 1024 * 1024 * 1024
    artifact_stream_idle_s: PositiveFloat = 600.0
    #: artifacts older than this are removed from the daemon's artifact store (oldest first)
    artifact_retention_days: PositiveFloat = 30.0
    #: the artifact store's total size (distinct content); past it the oldest artifacts go (none: no limit)
    artifact_retention_max_bytes: PositiveInt | None = None
    max_body_bytes: PositiveInt = 16 * 1024 * 1024
    max_header_bytes: PositiveInt = 8 * 1024
    source_roots: list[str] = []
    system_mode: bool = False
    proxy: str | None = None
    no_proxy: str | None = None
    ca_bundle: str | None = None
    providers: dict[str, ProviderConfig] = {}
    context: dict[str, Any] = {}
    artifact_store: ArtifactStoreConfig | None = None
    history: HistoryConfig = msgspec.field(default_factory=HistoryConfig)
    notifications: NotificationsConfig = msgspec.field(default_factory=NotificationsConfig)


class LoadedConfig(msgspec.Struct, kw_only=True):
    """The merged Config, the files that were read (in order) and, per top-level key, the source that won."""

    config: Config
    files: list[str] = []
    origins: dict[str, str] = {}
    #: the ``--config PATH`` it was loaded with (a session's configuration is loaded with it too)
    config_path: str | None = None


class ConfigError(SidecarError, ValueError):
    """Invalid configuration, naming the file (or env var / session), the key and the reason."""

    def __init__(self, file: str, key: str | None, reason: str) -> None:
        self.file, self.key, self.reason = file, key, reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"invalid configuration in {where}: {reason}")


#: Settings that shape the daemon itself or the trust placed in its network path: a session's
#: ``initialize.config`` cannot change them (a proxy plus a CA bundle would expose every token).
DAEMON_ONLY_KEYS = frozenset({
    "state_dir", "socket", "system_mode", "source_roots", "idle_timeout_s", "abandon_timeout_s",
    "max_body_bytes", "max_header_bytes", "proxy", "no_proxy", "ca_bundle", "artifact_store",
    "retention_runs", "retention_days", "artifact_max_file_bytes", "artifact_max_run_bytes",
    "artifact_stream_idle_s", "artifact_retention_days", "artifact_retention_max_bytes", "delivery_time_scale",
    "history", "notifications",
})
