"""The service layer as the daemon sees it: handlers for the run methods, session set-up at
``initialize``, the outbox dispatcher and maintenance (checkpoints, abandoned runs, retention)."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from ci_sidecar import cienv
from ci_sidecar.config import DAEMON_ONLY_KEYS, Config, ConfigError, LoadedConfig, context_overrides, load_config, scm_hosts
from ci_sidecar.credentials import Credential, find_credentials, session_credentials
from ci_sidecar.delivery.outbox import Entry, Outbox
from ci_sidecar.logs import register_secret
from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.methods import (
    AddPrCommentParams,
    CompleteTestRunParams,
    CreateTestRunParams,
    IngestJunitParams,
    ListTestRunsParams,
    ReadTestResultsParams,
    RenderBadgeParams,
    RenderReportParams,
    ReportResultsParams,
    SetBuildStatusParams,
    TestRunIdParams,
    UpdateTestRunParams,
)
from ci_sidecar.protocol.notify_methods import SendNotificationsParams
from ci_sidecar.protocol.records import Capabilities, CIContext, DeliverySummary
from ci_sidecar.providers import KNOWN_PROVIDERS, Providers
from ci_sidecar.providers.base import FindsCredentials, ProviderEnv, ReportsStatus
from ci_sidecar.providers.catalog import CATALOG
from ci_sidecar.providers.settings import settings_class
from ci_sidecar.state.instances import Instance, InstanceBusy, claim_exact, claim_instance

from .history import HistorySettings, RunHistory
from .notifications import Notifications
from .reporting import Reporting
from .artifacts import ArtifactService, ArtifactSettings
from .groups.service import GroupService
from .runs import RunService
from .session_context import SessionContext, output_root, trim_env
from .source_paths import SourcePolicy
from . import flush
from .instances import Adoptions
from .store import StateLocked, StateStore

if TYPE_CHECKING:
    from .calls import Call, ClientSession

__all__ = ["CoreService", "build_services"]

log = logging.getLogger("ci_sidecar.service")

MAINTENANCE_INTERVAL_S = 30.0
BACKGROUND_STOP_S = 3.0  # outcomes being journaled when the stop comes finish within this


class CoreService:
    """Runs, statuses, comments and their delivery, for every session of the daemon."""

    def __init__(self, loaded: LoadedConfig, *, role: str = "socket", adopt: Instance | None = None) -> None:
        """``role``: how the daemon serves (socket, stdio, exec); ``adopt``: serve nothing, only finish what an
        orphaned instance holds (see :mod:`.instances`)."""
        daemon_config = loaded.config
        self.daemon_config = daemon_config
        self.config_path = loaded.config_path
        self.options_role = role
        self.providers = Providers()
        self.instance = adopt or _claim(loaded, role)
        try:
            self.store = StateStore(self.instance.path, lock_fd=self.instance.fd)
        except BaseException:
            self.instance.release()
            raise
        if adopt is None:
            self.instance.write_owner(role)
        self.adoptions = None if adopt is not None else Adoptions(
            self, lambda inst: CoreService(loaded, role=role, adopt=inst))
        self.outbox = Outbox(self.providers, append=self.store.append, commit=self.store.commit,
                             env_for=self._env_for, on_outcome=self._on_outcome, on_log=self._on_log,
                             time_scale=daemon_config.delivery_time_scale)
        self.outbox.location = str(self.instance.path)
        self.runs = RunService(self.store, self.outbox, abandon_timeout_s=daemon_config.abandon_timeout_s,
                               retention_max_runs=daemon_config.retention_runs,
                               retention_max_age_s=daemon_config.retention_days * 86400)
        self.artifacts = ArtifactService(self.store, self.outbox, self.runs,
                                         ArtifactSettings.from_config(daemon_config, os.environ))
        self.reporting = Reporting(self.runs, artifacts_of=self.artifacts.list)
        self.notifications = Notifications(self.runs, daemon_config)
        self.runs.on_finished = self.notifications.on_finished
        h = daemon_config.history
        self.runs.history = RunHistory(self.instance.root, HistorySettings(
            enabled=h.enabled, window=h.flaky_window, max_runs=h.retention_runs, max_age_s=h.retention_days * 86400,
            lock_wait_s=h.lock_wait_s))
        self.groups = GroupService(self.runs)
        self._sessions: dict[str, ClientSession] = {}
        self._background: trio.CancelScope | None = None  # the outbox and maintenance tasks
        self._background_done = trio.Event()
        self._closed = False
        #: set when this instance must stay on disk even if it looks empty (its recovery failed)
        self.keep_instance = False
        self._recovered = False  # a checkpoint of a state that was never read would replace it with nothing

    # --- Service protocol ---------------------------------------------------------------------

    def handlers(self) -> dict[str, Any]:
        runs = self.runs

        def ctx(call: Call) -> SessionContext:
            return call.session.context  # set by session_started before any of these can run

        async def create(call: Call, p: CreateTestRunParams) -> Any:
            return await runs.create(ctx(call), p, warn=lambda message: call.session.log_nowait(2, message))

        async def update(call: Call, p: UpdateTestRunParams) -> Any:
            return await runs.update(ctx(call), p)

        async def report(call: Call, p: ReportResultsParams) -> Any:
            return await runs.report(ctx(call), p, applied=call.ordered_part_done)

        async def complete(call: Call, p: CompleteTestRunParams) -> Any:
            return await runs.complete(ctx(call), p)

        async def get(call: Call, p: TestRunIdParams) -> Any:
            return await runs.read_back(ctx(call), p.test_run_id)

        async def read_results(call: Call, p: ReadTestResultsParams) -> Any:
            return await runs.read_page(p.test_run_id, p.cursor, p.limit)

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

        async def notify(call: Call, p: SendNotificationsParams) -> Any:
            return await self.notifications.send(ctx(call), p)

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
            "read_test_results": read_results,
            "set_build_status": build_status,
            "add_pr_comment": comment,
            "send_notifications": notify,
        } | self.artifacts.handlers()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self.runs.recover)
        self._recovered = True
        if self.runs.history is not None:
            await self.runs.history.open()
        # found in a worker thread (file reads), added here: the pool wakes the dispatcher, which
        # only the event loop's thread may do
        for fingerprint, secret in await trio.to_thread.run_sync(self._daemon_credentials):
            self.outbox.credentials.add(fingerprint, secret)
        try:
            async with trio.open_nursery() as nursery:
                self._background = nursery.cancel_scope
                await nursery.start(self.outbox.run)
                nursery.start_soon(self._maintenance)
                nursery.start_soon(self.artifacts.run)
                await nursery.start(self.groups.run)
                if self.adoptions is not None:
                    nursery.start_soon(self.adoptions.run)
                task_status.started()
        finally:
            self._background_done.set()

    def drained(self) -> bool:
        """Nothing left to do here: no write pending, no run open (failed writes are final)."""
        return self.outbox.depth()["pending"] == 0 and self.runs.running() == 0

    async def close(self) -> None:
        """Stop the outbox and maintenance, then flush the state, then close it, then the providers.

        In that order: a delivery that settles writes the journal, so nothing may still deliver when
        the journal closes. Attempts in flight are cancelled and stay pending (they resume after a
        restart); an outcome already being recorded is recorded first. Adopted instances close first;
        an extra instance with nothing left in it is removed, any other is released for the next daemon.
        """
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            if self.adoptions is not None:
                await self.adoptions.aclose()
            stopped = True
            if self._background is not None:
                self._background.cancel()
                with trio.move_on_after(BACKGROUND_STOP_S):
                    await self._background_done.wait()
                stopped = self._background_done.is_set()
            if not stopped:  # never seen: only an uncancellable wait could cause it
                log.error("background tasks did not stop in %.0f s; leaving the journal open", BACKGROUND_STOP_S)
            else:
                remove = not self.instance.main and not self.keep_instance and self.drained()
                # no checkpoint of a state never read: it would replace that state with nothing
                if not remove and self._recovered:
                    try:
                        await self.store.checkpoint(self.runs.image)  # a fast restart next time
                    except Exception:
                        log.exception("final checkpoint failed (the journal still has everything)")
                await self.store.aclose()
                if self.runs.history is not None:
                    await self.runs.history.aclose()
                if remove:
                    self.instance.remove()
                else:
                    self.instance.release()
            for provider in self.providers.loaded().values():
                with trio.move_on_after(1):
                    await provider.aclose()

    def status(self) -> dict[str, Any]:
        providers: dict[str, Any] = {}
        for name in self.providers.loaded():
            reporter = self.providers.capable(name, ReportsStatus)
            providers[name] = reporter.status() if reporter is not None else {}
        for lane in self.outbox.budget_status():  # each token's writes, held-back live updates, budget used
            providers.setdefault(lane.pop("provider"), {}).setdefault("write_budget", []).append(lane)
        out = {"runs": len(self.runs.runs), "outbox": self.outbox.depth(), "providers": providers,
               "instance_dir": str(self.instance.path)}
        if self.adoptions is not None:
            out["instances"] = self.adoptions.infos()
        if self.groups.status()["groups"]:
            out["groups"] = self.groups.status()
        return out

    # --- sessions -------------------------------------------------------------------------------

    async def session_started(self, session: ClientSession, ci: CIContext, caps: Capabilities) -> tuple[CIContext, Capabilities]:
        env = session.env if session.env is not None else dict(os.environ)
        cwd = session.cwd or os.getcwd()
        try:
            loaded = await trio.to_thread.run_sync(lambda: load_config(
                env=env, cwd=cwd, config_path=self.config_path, session_config=session.config,
                system_mode=self.daemon_config.system_mode))
        except ConfigError as exc:
            path = f"$.config.{exc.key}" if exc.file == "initialize.config" and exc.key else f"{exc.file}:{exc.key or ''}"
            raise E.InvalidParams(path, exc.reason) from None
        config = loaded.config
        if self.daemon_config.system_mode:
            config = self._daemon_only_settings(session, config, loaded.origins)
        ctx = await trio.to_thread.run_sync(functools.partial(self._context_for, session.id, env, cwd, config,
                                                              peer_uid=session.peer_uid))
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

    def _daemon_only_settings(self, session: ClientSession, config: Config, origins: Mapping[str, str]) -> Config:
        """In system mode the daemon reads and writes with the service user's rights for every CI
        user: settings that widen that (source roots, limits, proxy, ...) come only from the daemon's
        own configuration, never from a working tree, a client's environment or its user config."""
        fields = [k for k in DAEMON_ONLY_KEYS if k in Config.__struct_fields__]
        for key in sorted(fields):
            if key in origins and getattr(config, key) != getattr(self.daemon_config, key):
                message = (f"ignoring {key} from {origins[key]}: in system mode only the daemon's own "
                           "configuration sets it")
                log.warning("session %s: %s", session.id, message)
                session.log_nowait(2, message)
        return msgspec.structs.replace(config, **{k: getattr(self.daemon_config, k) for k in fields})

    def _context_for(self, session_id: str | None, env: dict[str, str], cwd: str, config: Config, *,
                     peer_uid: int | None = None) -> SessionContext:
        try:
            ci = cienv.detect(env, cwd, context_overrides(config), hosts=scm_hosts(config))
        except ValueError as exc:
            raise E.InvalidParams("$.config.context", str(exc)) from None
        ctx = SessionContext(
            session_id=session_id or "daemon", ci=ci, config=config, cwd=cwd,
            output_root=output_root(config, cwd, system_mode=self.daemon_config.system_mode,
                                    state_dir=self.daemon_config.state_dir),
            env=trim_env(env, config), providers=self.providers,
        )
        ctx.sources = SourcePolicy.for_session(
            cwd, config.source_roots,
            forbidden=[self.daemon_config.state_dir, os.environ.get("CREDENTIALS_DIRECTORY")],
            system_mode=self.daemon_config.system_mode, peer_uid=peer_uid)
        credentials_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        wanted = {ci.provider} | ({ci.scm.provider} if ci.scm else set())
        ctx.credentials.update(session_credentials(wanted, env, config, credentials_dir,
                                                   daemon_config=self.daemon_config))
        ctx.credentials.update(self.notifications.session_credentials(config, env))
        for cred in ctx.credentials.values():
            register_secret(cred.secret.reveal())  # the caller adds them to the outbox's pool (trio context)
        store = self._store
        if store is not None:
            ctx.store, ctx.fixed_settings[store[0]] = store
            cred = self._store_credential(env, credentials_dir)
            if cred is not None:
                ctx.credentials[store[0]] = cred
        return ctx

    @functools.cached_property
    def _store(self) -> tuple[str, dict[str, Any]] | None:
        """The object store the daemon's ``[artifact_store]`` configures (the catalog's ``store`` provider) and its
        fixed settings; sessions cannot set them."""
        if self.daemon_config.artifact_store is None:
            return None  # and no object store module (httpx, botocore) is ever imported
        for spec in CATALOG:
            if spec.role == "store":
                fixed = settings_class(spec.name).from_daemon_config(self.daemon_config)
                if fixed is not None:
                    return spec.name, fixed
        return None

    def _store_credential(self, env: Mapping[str, str], credentials_dir: str | None) -> Credential | None:
        """The object store's own credential (session env, daemon env, credentials dir), bound to its endpoint;
        every secret part is registered for log redaction."""
        store = self._store
        finder = self.providers.capable(store[0], FindsCredentials) if store is not None else None
        if store is None or finder is None:
            return None
        found = finder.find_credential(store[1], env, os.environ, credentials_dir)
        if found is None:
            return None
        cred, secrets = found
        for part in secrets:
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
        held = self._store_credential(os.environ, credentials_dir)
        if held is not None:
            found.append((held.fingerprint, held.secret.reveal()))
        return found + self.notifications.load_daemon_credentials()

    async def flush_session(self, session: ClientSession) -> DeliverySummary:
        ctx = getattr(session, "context", None)
        timeout_s = (ctx.config if ctx is not None else self.daemon_config).flush_timeout_s
        await self.groups.settle(session.id, timeout_s)  # its shards' results are in the store and published
        waiting = self.outbox.summary(session_id=session.id)
        if waiting.pending:  # a client ending its session may wait this long: say for what
            why = f": {waiting.last_error}" if waiting.last_error else ""
            session.log_nowait(2 if waiting.last_error else 3, f"{flush.SHUTDOWN_NOTICE_PREFIX}{timeout_s:.0f} s for "
                               f"{waiting.pending} provider write(s) of this session to be delivered{why}")
        return await flush.flush_session(self.outbox, session, timeout_s)

    def session_ended(self, session: ClientSession) -> None:
        self._sessions.pop(session.id, None)
        self.artifacts.session_ended(session.id)

    # --- delivery plumbing ------------------------------------------------------------------

    def _env_for(self, entry: Entry, token: str | None) -> ProviderEnv:
        return ProviderEnv.build(
            entry.ci or CIContext(provider="local", sources={}), entry.config, entry.credential, token,
            read_results=self.runs.read_results, log=lambda msg: self._on_log(entry, msg),
            idempotency_key=entry.id, render_reports=self._render_reports,
        )

    def _render_reports(self, run_id: str) -> Any:
        """Every report of a finished run (blocking). The provider reads the results with
        ``read_results`` first, which flushes the run's record store."""
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


def _claim(loaded: LoadedConfig, role: str) -> Instance:
    """The state directory this daemon keeps: exactly ``--state-dir``, else the root's main instance or,
    when another daemon holds that, an instance of its own under the root."""
    root = loaded.config.state_dir or "."
    try:
        if loaded.origins.get("state_dir") == "command line":
            return claim_exact(root)
        return claim_instance(root, role)
    except InstanceBusy as exc:
        raise StateLocked(f"state directory {exc} is in use by another ci-sidecar (without --state-dir, "
                          "each daemon gets its own instance under the state root)") from None


def build_services(loaded: LoadedConfig, *, role: str = "socket") -> list[Any]:
    """The daemon's service layers (the CLI reports a config or state error and exits)."""
    Path(loaded.config.state_dir or ".").mkdir(parents=True, exist_ok=True, mode=0o700)
    return [CoreService(loaded, role=role)]
