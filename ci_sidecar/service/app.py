"""The service layer as the daemon sees it: handlers for the run methods, session set-up at
``initialize``, the outbox dispatcher and maintenance (checkpoints, abandoned runs, retention)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ci_sidecar import cienv
from ci_sidecar.config import Config, ConfigError, context_overrides, load_config, scm_hosts
from ci_sidecar.credentials import ACTIONS_RUNTIME, Credential, find_actions_runtime, find_credentials
from ci_sidecar.delivery.outbox import Entry, Outbox
from ci_sidecar.logs import register_secret
from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.methods import (
    AddPrCommentParams,
    CompleteTestRunParams,
    CreateTestRunParams,
    IngestJunitParams,
    ListTestRunsParams,
    RenderBadgeParams,
    RenderReportParams,
    ReportResultsParams,
    SetBuildStatusParams,
    TestRunIdParams,
    UpdateTestRunParams,
)
from ci_sidecar.protocol.records import Capabilities, CIContext, DeliverySummary
from ci_sidecar.providers import KNOWN_PROVIDERS, Providers
from ci_sidecar.providers.base import ProviderEnv, ReportsStatus

from .reporting import Reporting
from .artifacts import ArtifactService, ArtifactSettings
from .runs import RunService
from .session_context import SessionContext, output_root, trim_env
from .source_paths import SourcePolicy
from .store import StateStore

if TYPE_CHECKING:
    from ci_sidecar.rpc.server import DaemonOptions
    from ci_sidecar.rpc.session import Call, Session

__all__ = ["CoreService", "build_services"]

log = logging.getLogger("ci_sidecar.service")

MAINTENANCE_INTERVAL_S = 30.0
SHUTDOWN_FLUSH_S = 20.0  # under systemd's TimeoutStopSec with room to spare


class CoreService:
    """Runs, statuses, comments and their delivery, for every session of the daemon."""

    def __init__(self, options: DaemonOptions, daemon_config: Config) -> None:
        self.options = options
        self.daemon_config = daemon_config
        self.providers = Providers()
        self.store = StateStore(options.state_dir or ".")
        self.outbox = Outbox(self.providers, append=self.store.append, commit=self.store.commit,
                             env_for=self._env_for, on_outcome=self._on_outcome, on_log=self._on_log)
        self.runs = RunService(self.store, self.outbox, abandon_timeout_s=daemon_config.abandon_timeout_s,
                               retention_max_runs=daemon_config.retention_runs,
                               retention_max_age_s=daemon_config.retention_days * 86400)
        self.artifacts = ArtifactService(self.store, self.outbox, self.runs,
                                         ArtifactSettings.from_config(daemon_config, os.environ))
        self.reporting = Reporting(self.runs)
        self._sessions: dict[str, Session] = {}

    # --- Service protocol ---------------------------------------------------------------------

    def handlers(self) -> dict[str, Any]:
        runs = self.runs

        def ctx(call: Call) -> SessionContext:
            return call.session.context  # set by session_started before any of these can run

        async def create(call: Call, p: CreateTestRunParams) -> Any:
            return await runs.create(ctx(call), p)

        async def update(call: Call, p: UpdateTestRunParams) -> Any:
            return await runs.update(ctx(call), p)

        async def report(call: Call, p: ReportResultsParams) -> Any:
            return await runs.report(ctx(call), p, applied=call.ordered_part_done)

        async def complete(call: Call, p: CompleteTestRunParams) -> Any:
            return await runs.complete(ctx(call), p)

        async def get(call: Call, p: TestRunIdParams) -> Any:
            return await runs.read_back(ctx(call), p.test_run_id)

        async def list_runs(call: Call, p: ListTestRunsParams) -> Any:
            return runs.list(p)

        async def build_status(call: Call, p: SetBuildStatusParams) -> Any:
            return await runs.set_build_status(ctx(call), p)

        async def comment(call: Call, p: AddPrCommentParams) -> Any:
            return await runs.add_comment(ctx(call), p)

        reporting = self.reporting

        async def ingest(call: Call, p: IngestJunitParams) -> Any:
            return await reporting.ingest_junit(call, ctx(call), p.test_run_id, p.path)

        async def render_report(call: Call, p: RenderReportParams) -> Any:
            return await reporting.render_report(p.test_run_id, p.format, p.max_bytes)

        async def render_badge(call: Call, p: RenderBadgeParams) -> Any:
            return await reporting.render_badge(ctx(call), p.test_run_id, p.label, p.status, p.style)

        return {
            "ingest_junit": ingest,
            "render_report": render_report,
            "render_badge": render_badge,
            "create_test_run": create,
            "update_test_run": update,
            "report_results": report,
            "complete_test_run": complete,
            "get_test_run_status": get,
            "list_test_runs": list_runs,
            "set_build_status": build_status,
            "add_pr_comment": comment,
        } | self.artifacts.handlers()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self.runs.recover)
        # found in a worker thread (file reads), added here: the pool wakes the dispatcher, which
        # only the event loop's thread may do
        for fingerprint, secret in await trio.to_thread.run_sync(self._daemon_credentials):
            self.outbox.credentials.add(fingerprint, secret)
        async with trio.open_nursery() as nursery:
            await nursery.start(self.outbox.run)
            nursery.start_soon(self._maintenance)
            nursery.start_soon(self.artifacts.run)
            task_status.started()

    async def close(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                await self.store.checkpoint(self.runs.image)  # a fast restart next time
            except Exception:
                log.exception("final checkpoint failed (the journal still has everything)")
            await self.store.aclose()
            for provider in self.providers.loaded().values():
                with trio.move_on_after(1):
                    await provider.aclose()

    def status(self) -> dict[str, Any]:
        providers: dict[str, Any] = {}
        for name in self.providers.loaded():
            reporter = self.providers.capable(name, ReportsStatus)
            providers[name] = reporter.status() if reporter is not None else {}
        return {"runs": len(self.runs.runs), "outbox": self.outbox.depth(), "providers": providers}

    # --- sessions -------------------------------------------------------------------------------

    async def session_started(self, session: Session, ci: CIContext, caps: Capabilities) -> tuple[CIContext, Capabilities]:
        env = session.env if session.env is not None else dict(os.environ)
        cwd = session.cwd or os.getcwd()
        try:
            loaded = await trio.to_thread.run_sync(lambda: load_config(
                env=env, cwd=cwd, config_path=self.options.config_path, session_config=session.config,
                system_mode=self.options.system_mode))
        except ConfigError as exc:
            path = f"$.config.{exc.key}" if exc.file == "initialize.config" and exc.key else f"{exc.file}:{exc.key or ''}"
            raise E.InvalidParams(path, exc.reason) from None
        ctx = await trio.to_thread.run_sync(self._context_for, session.id, env, cwd, loaded.config)
        for cred in ctx.credentials.values():
            # here, not in the worker thread: adding wakes the outbox dispatcher (a trio Event)
            self.outbox.credentials.add(cred.fingerprint, cred.secret.reveal())
        session.env = ctx.env  # only what detection and token lookup need, in memory
        session.context = ctx
        self._sessions[session.id] = session
        roles = {"ci": ctx.role_caps(ctx.ci_provider)}  # the object store, when configured, holds artifacts
        if ctx.scm_provider and ctx.scm_provider != ctx.ci_provider:
            roles["scm"] = ctx.caps(ctx.scm_provider)
        caps.roles = roles
        return ctx.ci, caps

    def _context_for(self, session_id: str | None, env: dict[str, str], cwd: str, config: Config) -> SessionContext:
        try:
            ci = cienv.detect(env, cwd, context_overrides(config), hosts=scm_hosts(config))
        except ValueError as exc:
            raise E.InvalidParams("$.config.context", str(exc)) from None
        ctx = SessionContext(
            session_id=session_id or "daemon", ci=ci, config=config, cwd=cwd,
            output_root=output_root(config, cwd, system_mode=self.options.system_mode,
                                    state_dir=self.options.state_dir),
            env=trim_env(env, config), providers=self.providers,
        )
        ctx.sources = SourcePolicy.for_session(
            cwd, config.source_roots,
            forbidden=[self.options.state_dir, os.environ.get("CREDENTIALS_DIRECTORY")])
        credentials_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        wanted = {ci.provider} | ({ci.scm.provider} if ci.scm else set())
        for provider in wanted - {"local"}:
            for cred in find_credentials(provider, env, config, credentials_dir, daemon_config=self.daemon_config):
                if cred.base_url:  # an unbound token is never sent anywhere
                    ctx.credentials[provider] = cred
                    secret = cred.secret.reveal()
                    register_secret(secret)  # the caller adds it to the outbox's pool (trio context)
                    break
        runtime = find_actions_runtime(env) if "github" in wanted else None
        if runtime is not None:  # GitHub Actions' artifact service token: the credential of artifact uploads
            ctx.credentials[ACTIONS_RUNTIME] = runtime
            register_secret(runtime.secret.reveal())
        ctx.object_store = self._object_store()
        if ctx.object_store is not None:
            cred = self._s3_credential(env, credentials_dir)
            if cred is not None:
                ctx.credentials["s3"] = cred
        return ctx

    def _object_store(self) -> dict[str, Any] | None:
        """The daemon's ``[artifact_store]`` as the ``s3`` provider's config (sessions cannot set it)."""
        store = self.daemon_config.artifact_store
        if store is None or not store.bucket:
            return None  # and the S3 module (httpx, botocore) is never imported
        from ci_sidecar.providers.s3 import store_config

        return store_config(self.daemon_config)

    def _s3_credential(self, env: Mapping[str, str], credentials_dir: str | None) -> Credential | None:
        """The object store's keys (session env, daemon env, credentials dir), bound to its endpoint;
        every secret part is registered for log redaction."""
        from ci_sidecar.providers.s3 import S3Secret, find_s3_credential

        store = self._object_store()
        if store is None:
            return None
        cred = find_s3_credential(env, os.environ, credentials_dir, store["endpoint_url"])
        if cred is not None:
            blob = cred.secret.reveal()
            register_secret(blob)
            for part in (S3Secret.decode(blob) or S3Secret(access_key_id="", secret_access_key="")).secrets():
                register_secret(part)
        return cred

    def _daemon_credentials(self) -> list[tuple[str, str]]:
        """The daemon's own tokens (its environment, config, ``$CREDENTIALS_DIRECTORY``) as
        (fingerprint, secret): writes journaled before a restart resume with them even before any
        session connects. Blocking (reads files)."""
        credentials_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        found: list[tuple[str, str]] = []
        for provider in KNOWN_PROVIDERS:
            if provider == "local":
                continue
            for cred in find_credentials(provider, os.environ, self.daemon_config, credentials_dir):
                if cred.base_url:
                    secret = cred.secret.reveal()
                    register_secret(secret)
                    found.append((cred.fingerprint, secret))
        s3 = self._s3_credential(os.environ, credentials_dir)
        if s3 is not None:
            secret = s3.secret.reveal()
            register_secret(secret)
            found.append((s3.fingerprint, secret))
        return found

    async def flush_session(self, session: Session) -> DeliverySummary:
        return await self.outbox.flush_session(session.id, SHUTDOWN_FLUSH_S)

    def session_ended(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        self.artifacts.session_ended(session.id)

    # --- delivery plumbing ------------------------------------------------------------------

    def _env_for(self, entry: Entry, token: str | None) -> ProviderEnv:
        cfg = dict(entry.config)
        base_url = cfg.get("base_url")
        if token is not None and entry.credential is not None and entry.credential.base_url:
            # a token goes only where it is bound (a daemon-held token never follows a session's base_url)
            base_url = cfg["base_url"] = entry.credential.base_url
        return ProviderEnv(
            ci=entry.ci or CIContext(provider="local", sources={}), config=cfg, base_url=base_url,
            token=token, read_results=self.runs.read_results, log=lambda msg: self._on_log(entry, msg),
            idempotency_key=entry.id, username=entry.credential.username if entry.credential else None,
            render_reports=self._render_reports,
        )

    def _render_reports(self, run_id: str) -> Any:
        state = self.runs.runs.get(run_id)
        return self.reporting.write_all(state) if state is not None else None

    def _on_outcome(self, entry: Entry, outcome: Any, error: Any) -> None:
        self.runs.on_outcome(entry, outcome, error)
        self.artifacts.on_outcome(entry, outcome, error)

    def _on_log(self, entry: Entry, message: str) -> None:
        session = self._sessions.get(entry.session_id or "")
        if session is not None:
            session.log_nowait(2, message)

    async def _maintenance(self) -> None:
        interval = min(MAINTENANCE_INTERVAL_S, max(0.2, self.daemon_config.abandon_timeout_s / 4))
        while True:
            with trio.move_on_after(interval):
                await self.runs.checkpoint_wanted.wait()
            self.runs.checkpoint_wanted = trio.Event()
            try:
                if self.store.wants_checkpoint():
                    await self.store.checkpoint(self.runs.image)
                await self.runs.cancel_abandoned()
                await self.runs.apply_retention()
            except Exception:
                log.exception("maintenance failed; will try again")


def build_services(options: DaemonOptions) -> list[Any]:
    """The daemon's service layers (the CLI reports a config or state error and exits)."""
    loaded = load_config(env=os.environ, cwd=os.getcwd(), config_path=options.config_path,
                         system_mode=options.system_mode)
    Path(options.state_dir or ".").mkdir(parents=True, exist_ok=True, mode=0o700)
    return [CoreService(options, loaded.config)]
