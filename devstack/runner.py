"""The local stack: moto server, the HTTP API, SQS pollers, schedules, the sink and the outbox,
all built from template.yaml in one process. Nothing here knows any particular function."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import provision as provisioning
from devstack.api import Authorizer, HttpApi, compile_route, serve
from devstack.calls import CallLog
from devstack.functions import LocalFunction
from devstack.outbox import Outbox
from devstack.persist import Persistence, Restored
from devstack.pollers import SqsPoller
from devstack.schedules import Schedule
from devstack.template import TEMPLATE, functions, load

HOST = "127.0.0.1"
# What the platform adapters read to find each platform; the local stack points them at the sink.
PLATFORM_URL_SETTINGS = (
    "MIXPANEL_API_URL",
    "MIXPANEL_EU_API_URL",
    "GA4_API_URL",
    "MIXPANEL_GDPR_API_URL",
    "MIXPANEL_EU_GDPR_API_URL",
    "GA4_USER_DELETION_API_URL",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def port_from_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    port = int(value)
    return free_port() if port == 0 else port


@dataclass
class Ports:
    aws: int = 5000
    api: int = 3000
    sink: int = 3001

    @classmethod
    def from_env(cls) -> Ports:
        return cls(
            aws=port_from_env("SM_AWS_PORT", 5000),
            api=port_from_env("SM_API_PORT", 3000),
            sink=port_from_env("SM_SINK_PORT", 3001),
        )


@dataclass
class LocalStack:
    state_dir: Path = Path(".local")
    ports: Ports = field(default_factory=Ports)
    template_path: Path = TEMPLATE
    visibility_cap: int | None = None
    run_schedules: bool = True
    persist_dir: Path | None = None
    # Only the emulator with the template provisioned (no API, pollers, schedules or sink).
    emulator_only: bool = False
    persistence: Persistence | None = None
    restored: Restored | None = None
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    pollers: list[SqsPoller] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    organizations: list[dict[str, str]] = field(default_factory=list)
    _servers: list[Any] = field(default_factory=list)

    @property
    def aws_endpoint(self) -> str:
        return f"http://{HOST}:{self.ports.aws}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.ports.api}"

    @property
    def sink_url(self) -> str:
        return f"http://{HOST}:{self.ports.sink}"

    @property
    def outbox_dir(self) -> Path:
        return self.state_dir / "outbox"

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name, port in (
            ("AWS", self.ports.aws),
            ("API", self.ports.api),
            ("SINK", self.ports.sink),
        ):
            with socket.socket() as probe:
                # As the servers bind: a port left in TIME_WAIT by a stack just killed is free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((HOST, port))
                except OSError as exc:
                    raise OSError(f"port {port} is taken (set SM_{name}_PORT)") from exc
        self._start_emulator()
        if self.persist_dir:
            self.persistence = Persistence(self.persist_dir)
            self.persistence.install()
        template = load(self.template_path)
        from devstack import iam

        # Every function runs under its own template role; the stack itself is the operator.
        self.stack, self.enforcement, self.operator = iam.secure(
            "sm-local",
            self.template_path,
            visibility_cap=self.visibility_cap,
            after_provision=self.persistence.restore if self.persistence else None,
        )
        self.enforcement.on_denied = self._denied
        if os.environ.get("SM_CALL_LOG"):
            self.enforcement.call_log = CallLog(Path(os.environ["SM_CALL_LOG"]))
        self.restored = self.persistence.restored if self.persistence else None
        if self.restored:
            self.organizations = list(self.restored.meta.get("organizations") or [])
        os.environ.update(self.operator)
        self.environment = self._function_environment()
        os.environ.update(self.environment)
        from success_metrics import caches

        caches.reset_all()
        if self.emulator_only:
            self.write_state()
            return
        for spec in functions(template):
            self.functions[spec.logical_id] = LocalFunction(spec, root=self.template_path.parent)
        self._start_sink()
        self._start_api(template)
        self._start_pollers(template)
        self._start_schedules()
        self.outbox = Outbox(self.outbox_dir)
        self.outbox.start()
        self.write_state()
        if self.persistence:
            self.persistence.start()

    def _denied(self, function: str, operation: str, action: str, resource: str) -> None:
        print(
            f"[devstack] AccessDenied: {function} called {operation}, which needs {action} on "
            f"{resource}: template.yaml does not grant it"
        )

    def _start_emulator(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        from devstack import emulator

        emulator.install()
        # One access-log line per AWS call would bury everything else.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address=HOST, port=self.ports.aws, verbose=False)
        server.start()
        self._servers.append(server)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.aws_endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": provisioning.REGION,
                "AWS_REGION": provisioning.REGION,
                # The local stack has no X-Ray daemon.
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            os.environ.pop(name, None)

    def _function_environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for function in functions(self.stack.template):
            for name, value in self.stack.environment(function.logical_id).items():
                if name in env and env[name] != value:
                    raise ValueError(
                        f"{function.logical_id} sets {name}={value!r}, another function "
                        f"{env[name]!r}: one process cannot hold both"
                    )
                env[name] = value
        for name in PLATFORM_URL_SETTINGS:
            env[name] = self.sink_url
        env["GOOGLE_OAUTH_TOKEN_URL"] = f"{self.sink_url}/token"
        # Alarms (AlarmTopic -> AlarmQueue -> AlarmNotifierFunction) reach the sink's Slack.
        env["OPS_SLACK_WEBHOOK_URL"] = f"{self.sink_url}/services/TOPS/BOPS/alarms"
        env["ALLOW_LOOPBACK_WEBHOOKS"] = "true"
        # Slack URLs must name an allowed host: the sink's too (digest, alerts and alarms).
        slack_hosts = env.get("SLACK_ALLOWED_HOSTS", "hooks.slack.com")
        env["SLACK_ALLOWED_HOSTS"] = f"{slack_hosts},{HOST}" if slack_hosts else HOST
        # Links in emails (export downloads) point at this API, not at an execute-api host.
        env["PUBLIC_API_URL"] = self.api_url
        return env

    def _start_sink(self) -> None:
        from devstack.sink import Sink

        self.sink = Sink(host=HOST, port=self.ports.sink)
        self.sink.start()
        self._servers.append(self.sink)

    def _authorizers(self, template: dict[str, Any]) -> dict[tuple[str, str], Authorizer]:
        found: dict[tuple[str, str], Authorizer] = {}
        for api_id, resource in template["Resources"].items():
            if resource["Type"] != "AWS::Serverless::HttpApi":
                continue
            for name, spec in (
                resource.get("Properties", {}).get("Auth", {}).get("Authorizers") or {}
            ).items():
                arn = spec.get("FunctionArn", {})
                logical = arn.get("Fn::GetAtt", [None])[0] if isinstance(arn, dict) else None
                if logical not in self.functions:
                    raise ValueError(
                        f"authorizer {name}: FunctionArn must be !GetAtt <Function>.Arn"
                    )
                identity = spec.get("Identity", {})
                found[(api_id, name)] = Authorizer(
                    name=name,
                    function=self.functions[logical],
                    identity_headers=list(identity.get("Headers", [])),
                    ttl=int(identity.get("ReauthorizeEvery", 300)),
                    simple=bool(spec.get("EnableSimpleResponses", False)),
                )
        return found

    def _start_api(self, template: dict[str, Any]) -> None:
        authorizers = self._authorizers(template)
        defaults = {
            api_id: (r.get("Properties", {}).get("Auth", {}) or {}).get("DefaultAuthorizer")
            for api_id, r in template["Resources"].items()
            if r["Type"] == "AWS::Serverless::HttpApi"
        }
        routes = []
        for function in self.functions.values():
            for props in function.spec.events_of("HttpApi").values():
                api = props.get("ApiId", {})
                api_id = (
                    api.get("Ref", "ServerlessHttpApi")
                    if isinstance(api, dict)
                    else "ServerlessHttpApi"
                )
                auth_name = (props.get("Auth") or {}).get("Authorizer") or defaults.get(api_id)
                authorizer = None
                if auth_name and auth_name != "NONE":
                    authorizer = authorizers[(api_id, auth_name)]
                method = str(props.get("Method", "ANY")).upper()
                routes.append(
                    compile_route(
                        method if method != "X-AMAZON-APIGATEWAY-ANY-METHOD" else "ANY",
                        props.get("Path", "/{proxy+}"),
                        function,
                        authorizer,
                    )
                )
        self.api = HttpApi(routes)
        self.api.control["/_local/"] = self._control
        self._servers.append(serve(self.api, HOST, self.ports.api))

    def _start_pollers(self, template: dict[str, Any]) -> None:
        from success_metrics import aws

        resolver = self.stack.resolver
        for function in self.functions.values():
            for name, props in function.spec.events_of("SQS").items():
                queue_arn = str(resolver.resolve(props["Queue"]))
                logical = next(
                    lid for lid, phys in self.stack.physical.items() if phys.get("Arn") == queue_arn
                )
                poller = SqsPoller(
                    name=f"{function.name}.{name}",
                    function=function,
                    queue_url=self.stack.physical[logical]["QueueUrl"],
                    queue_arn=queue_arn,
                    batch_size=int(props.get("BatchSize", 10)),
                    window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_failures="ReportBatchItemFailures"
                    in (props.get("FunctionResponseTypes") or []),
                    sqs=aws.sqs(),
                )
                poller.start()
                self.pollers.append(poller)

    def _start_schedules(self) -> None:
        for function in self.functions.values():
            for name, props in function.spec.events_of("Schedule").items():
                schedule = Schedule(
                    name=name,
                    function=function,
                    expression=str(props["Schedule"]),
                    enabled=self.run_schedules and props.get("Enabled", True) is not False,
                )
                schedule.start()
                self.schedules.append(schedule)

    # ------------------------------------------------------------------ control API

    def schedule(self, name: str) -> Schedule:
        for schedule in self.schedules:
            if name in (schedule.name, f"{schedule.function.name}.{schedule.name}"):
                return schedule
        known = ", ".join(s.name for s in self.schedules) or "none"
        raise KeyError(f"no schedule named {name!r} (known: {known})")

    def status(self) -> dict[str, Any]:
        return {
            "persist": (
                {
                    "directory": str(self.persistence.directory.resolve()),
                    "snapshots": self.persistence.snapshots,
                    "last_snapshot_seconds": round(self.persistence.last_seconds, 3),
                    "last_snapshot_bytes": self.persistence.last_bytes,
                    "errors": self.persistence.errors,
                }
                if self.persistence
                else None
            ),
            "functions": {
                name: {
                    "invocations": len(f.invocations),
                    "errors": sum(1 for i in f.invocations if i.error),
                }
                for name, f in self.functions.items()
            },
            "routes": [
                {
                    "route": r.route_key,
                    "function": r.function.name,
                    "authorizer": r.authorizer.name if r.authorizer else None,
                }
                for r in self.api.routes
            ],
            "pollers": [
                {
                    "name": p.name,
                    "queue_url": p.queue_url,
                    "batch_size": p.batch_size,
                    "report_failures": p.report_failures,
                    **p.stats.__dict__,
                }
                for p in self.pollers
            ],
            "schedules": [
                {
                    "name": s.name,
                    "function": s.function.name,
                    "expression": s.expression,
                    "enabled": s.enabled,
                    "runs": s.runs,
                    "last_error": s.last_error,
                }
                for s in self.schedules
            ],
        }

    def _control(self, path: str, body: bytes) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts == ["status"]:
            return 200, self.status()
        if len(parts) == 3 and parts[0] == "schedules" and parts[2] == "run":
            try:
                schedule = self.schedule(parts[1])
            except KeyError as exc:
                return 404, {"error": str(exc.args[0])}
            try:
                result = schedule.run_now()
            except Exception as exc:
                return 500, {"error": f"{type(exc).__name__}: {exc}"}
            return 200, {
                "schedule": schedule.name,
                "function": schedule.function.name,
                "result": result,
            }
        if len(parts) == 2 and parts[0] == "pollers" and parts[1] in ("pause", "resume"):
            for poller in self.pollers:
                getattr(poller, parts[1])()
            return 200, {"pollers": parts[1] + "d"}
        return 404, {"error": f"unknown control path /_local/{path}"}

    # ------------------------------------------------------------------ state

    def write_state(self) -> Path:
        state = {
            "api_url": self.api_url,
            "console_url": f"{self.api_url}/console/",
            "aws_endpoint": self.aws_endpoint,
            "sink_url": self.sink_url,
            "outbox": str(self.outbox_dir.resolve()),
            "control_url": f"{self.api_url}/_local",
            "region": provisioning.REGION,
            "organizations": self.organizations,
            "environment": self.environment,
            # The operator's keys (an admin IAM user of the emulator): smctl uses them.
            "credentials": {
                "aws_access_key_id": self.operator["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": self.operator["AWS_SECRET_ACCESS_KEY"],
            },
            "pid": os.getpid(),
            "persist_dir": str(self.persist_dir.resolve()) if self.persist_dir else None,
        }
        if self.persistence:
            self.persistence.meta["organizations"] = self.organizations
        path = self.state_dir / "stack.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)
        return path

    def stop(self) -> None:
        if hasattr(self, "enforcement"):
            from devstack import iam

            iam.record(self.enforcement)
        for schedule in self.schedules:
            schedule.stop()
        threads = [threading.Thread(target=p.stop) for p in self.pollers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(6)
        if hasattr(self, "enforcement") and self.enforcement.call_log is not None:
            self.enforcement.call_log.close()
        if hasattr(self, "outbox"):
            self.outbox.stop()
        if self.persistence:
            try:
                self.persistence.stop()
            except Exception as exc:  # say so, and keep stopping
                print(f"[devstack] persist: the last snapshot failed: {exc}")
        for server in reversed(self._servers):
            try:
                if hasattr(server, "shutdown"):
                    server.shutdown()
                    server.server_close()
                else:
                    server.stop()
            except Exception as exc:  # keep stopping the rest
                print(f"[devstack] stopping {type(server).__name__}: {exc}")
        state = self.state_dir / "stack.json"
        if state.exists():
            state.unlink()
        time.sleep(0)
