"""Operational commands over the Kubernetes API: status, readiness and endpoints of a quorum release.

quorum runs on Kubernetes as one KubeRay ``RayService`` (``ray.io/v1``) created by the Helm chart
``helm/quorum`` (docs/deployment.md). This module reads what KubeRay reports about it and the chart's
Services, through the official ``kubernetes`` client:

- :func:`load_api` builds an ``ApiClient`` (in-cluster service account, else a kubeconfig);
- :func:`get_status` reads the RayService and parses its status into :class:`RayServiceStatus`;
- :func:`wait_ready` watches the RayService until it is ready (or fails, or a deadline passes);
- :func:`get_endpoints` lists the release's Services as :class:`Endpoint` rows (gRPC, OpenAI HTTP, ...);
- :func:`format_status` / :func:`format_endpoints` render them as plain lines for the CLI.

Every call to the API goes through the ``ApiClient`` passed in (nothing uses the client library's global
default configuration), so tests can point one at a recorded-response server. Every failure a user can
act on is raised as :class:`K8sError` with a message saying what to do.

Names follow the chart (``templates/_helpers.tpl``): the RayService is ``quorum.fullname`` — the release
name when it contains "quorum", else ``<release>-quorum``, at most 40 characters (:func:`rayservice_name`;
pass ``name=`` when ``nameOverride``/``fullnameOverride`` are set) — and every object carries the labels
``app.kubernetes.io/instance=<release>`` and ``app.kubernetes.io/part-of=quorum``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

__all__ = [
    "GROUP",
    "PLURAL",
    "VERSION",
    "ApiClient",
    "ApplicationStatus",
    "Condition",
    "DeploymentStatus",
    "Endpoint",
    "EndpointKind",
    "K8sError",
    "RayServiceStatus",
    "default_namespace",
    "format_endpoints",
    "format_status",
    "get_endpoints",
    "get_status",
    "load_api",
    "parse_rayservice",
    "rayservice_name",
    "release_selector",
    "wait_ready",
]

GROUP = "ray.io"
VERSION = "v1"
PLURAL = "rayservices"
RESOURCE = f"{PLURAL}.{GROUP}"
CHART = "helm/quorum"
CHART_NAME = "quorum"

# Ray Serve application states (serve.proto ApplicationStatus) and the deployment states that serve traffic.
APP_RUNNING = "RUNNING"
APP_DEPLOY_FAILED = "DEPLOY_FAILED"
SERVING_DEPLOYMENT_STATES = frozenset({"HEALTHY", "UPSCALING", "DOWNSCALING"})
SERVICE_RUNNING = "Running"

# A watch that ends sooner than this after it started is not restarted before this much time passed,
# so a server that keeps closing watches at once is not polled in a tight loop.
_RECONNECT_BACKOFF_S = 0.5
_CONNECT_TIMEOUT_S = 10.0
_SERVICEACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

# The kubernetes package's config and watch helpers carry no annotations; these aliases type them.
_load_incluster_config: Callable[..., None] = config.load_incluster_config
_new_client_from_config: Callable[..., ApiClient] = config.new_client_from_config
_list_kube_config_contexts: Callable[..., tuple[list[dict[str, Any]], dict[str, Any]]] = (
    config.list_kube_config_contexts
)
_Watch: Callable[[], Any] = watch.Watch


class K8sError(Exception):
    """A Kubernetes operation failed; ``message`` says why and what to do about it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------------------------- names


def rayservice_name(release: str, name_override: str = "") -> str:
    """The RayService's name for a Helm release, as the chart's ``quorum.fullname`` computes it.

    Without ``fullnameOverride``: the release name if it contains the chart name (``name_override`` or
    "quorum"), else ``<release>-<chart name>``; truncated to 40 characters, then one trailing "-" removed.
    """
    chart_name = name_override or CHART_NAME
    full = release if chart_name in release else f"{release}-{chart_name}"
    return full[:40].removesuffix("-")


def release_selector(release: str) -> str:
    """The label selector of the objects the chart renders for ``release``."""
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/part-of=quorum"


# ------------------------------------------------------------------------------------------- clients


def load_api(kubeconfig: str | None = None, context: str | None = None) -> ApiClient:
    """An ``ApiClient`` for the cluster: the pod's service account when running in a pod, else a kubeconfig.

    With neither ``kubeconfig`` nor ``context`` given and ``KUBERNETES_SERVICE_HOST`` set, the in-cluster
    configuration is tried first; otherwise (or when it is incomplete) the kubeconfig is used:
    ``kubeconfig``, else ``$KUBECONFIG`` (a ``:``-separated list is merged), else ``~/.kube/config``, with
    ``context`` or the file's current context. The global default configuration of the ``kubernetes``
    package is left untouched. Nothing is sent to the API server here.

    Raises:
        K8sError: no usable configuration; the message names the file, the context and the contexts the
            file defines.
    """
    in_cluster_problem = ""
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        try:
            _load_incluster_config(client_configuration=configuration)
        except config.ConfigException as exc:
            in_cluster_problem = f" (in-cluster configuration unusable: {exc})"
        else:
            return ApiClient(configuration)
    path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        api = _new_client_from_config(config_file=path, context=context, persist_config=False)
    except config.ConfigException as exc:
        raise K8sError(_kubeconfig_problem(path, context, str(exc)) + in_cluster_problem) from exc
    except (OSError, yaml.YAMLError, ValueError, TypeError, KeyError) as exc:  # unreadable, malformed, bad fields
        raise K8sError(_kubeconfig_problem(path, context, f"{type(exc).__name__}: {exc}") + in_cluster_problem) from exc
    return api


def _kubeconfig_problem(path: str, context: str | None, problem: str) -> str:
    message = f"cannot load the kubeconfig {path}: {problem}"
    if context is not None:
        try:
            contexts, _ = _list_kube_config_contexts(config_file=path)
        except Exception:  # noqa: BLE001 - only decorates the message
            contexts = []
        names = ", ".join(sorted(str(c.get("name")) for c in contexts or [])) or "none"
        message += f"; context {context!r} not usable (contexts in the file: {names})"
    return message + ". Point --kubeconfig (or $KUBECONFIG) at a valid file, or select a context with --context."


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace a user means by default: the pod's own namespace in a pod, else the kubeconfig
    context's ``namespace``, else "default". Never raises; an unreadable configuration gives "default"."""
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        with contextlib.suppress(OSError):
            with open(_SERVICEACCOUNT_NAMESPACE, encoding="utf-8") as handle:
                namespace = handle.read().strip()
            if namespace:
                return namespace
    path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        contexts, current = _list_kube_config_contexts(config_file=path)
    except Exception:  # noqa: BLE001 - any failure means "no preference"
        return "default"
    chosen: dict[str, Any] | None = current
    if context is not None:
        chosen = next((c for c in contexts or [] if c.get("name") == context), None)
    configured = ((chosen or {}).get("context") or {}).get("namespace")
    return str(configured) if configured else "default"


# ------------------------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Condition:
    """One ``metav1.Condition`` of the RayService (KubeRay ≥ 1.3: types ``Ready`` and ``UpgradeInProgress``)."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class DeploymentStatus:
    """A Serve deployment as KubeRay reports it (``serveDeploymentStatuses.<name>``)."""

    name: str
    status: str  # Ray Serve: UPDATING | HEALTHY | UNHEALTHY | DEPLOY_FAILED | UPSCALING | DOWNSCALING
    message: str = ""

    @property
    def serving(self) -> bool:
        """True when the deployment's replicas are up (HEALTHY, or scaling while healthy)."""
        return self.status in SERVING_DEPLOYMENT_STATES


@dataclass(frozen=True)
class ApplicationStatus:
    """A Serve application as KubeRay reports it (``applicationStatuses.<name>``)."""

    name: str
    status: str  # Ray Serve: NOT_STARTED | DEPLOYING | RUNNING | DEPLOY_FAILED | DELETING | UNHEALTHY
    message: str = ""
    deployments: tuple[DeploymentStatus, ...] = ()

    @property
    def running(self) -> bool:
        return self.status == APP_RUNNING


@dataclass(frozen=True)
class RayServiceStatus:
    """What KubeRay reports about a RayService, parsed from its ``status`` (see :func:`parse_rayservice`).

    ``service_status`` is KubeRay's ``status.serviceStatus`` ("Running", KubeRay ≤ 1.1 also
    "WaitForServeDeploymentReady" etc.; None when absent, as newer KubeRay leaves it when not ready).
    ``applications`` are the Serve applications of the active Ray cluster, ``pending_*`` those of the
    cluster KubeRay is bringing up during a zero-downtime (NewCluster) upgrade. ``generation`` and
    ``observed_generation`` tell whether KubeRay has seen the latest spec yet.
    """

    namespace: str
    name: str
    service_status: str | None = None
    conditions: tuple[Condition, ...] = ()
    active_cluster: str | None = None
    applications: tuple[ApplicationStatus, ...] = ()
    pending_cluster: str | None = None
    pending_applications: tuple[ApplicationStatus, ...] = ()
    num_serve_endpoints: int | None = None
    generation: int | None = None
    observed_generation: int | None = None
    resource_version: str | None = None

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, if KubeRay reports conditions (≥ 1.3)."""
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def stale(self) -> bool:
        """True while KubeRay has not reconciled the latest spec (``observedGeneration < generation``)."""
        if not self.generation or not self.observed_generation:
            return False
        return self.observed_generation < self.generation

    @property
    def ready(self) -> bool:
        """Whether the RayService serves traffic now.

        With conditions (KubeRay ≥ 1.3): the ``Ready`` condition is "True". Without: ``serviceStatus`` is
        "Running" and every application of the active cluster (at least one) is RUNNING. Never ready while
        the status is :attr:`stale`.
        """
        if self.stale:
            return False
        ready = self.condition("Ready")
        if ready is not None:
            return ready.status == "True"
        return (
            self.service_status == SERVICE_RUNNING
            and bool(self.applications)
            and all(app.running for app in self.applications)
        )

    @property
    def upgrade_in_progress(self) -> bool:
        """A second Ray cluster is being brought up (``UpgradeInProgress`` condition, else a pending cluster)."""
        upgrade = self.condition("UpgradeInProgress")
        if upgrade is not None:
            return upgrade.status == "True"
        return bool(self.pending_cluster)

    @property
    def settled(self) -> bool:
        """Ready, no upgrade in progress, and every application RUNNING: the latest spec is what serves."""
        return (
            self.ready
            and not self.upgrade_in_progress
            and bool(self.applications)
            and all(app.running for app in self.applications)
        )

    def failures(self, *, include_pending: bool = False) -> list[str]:
        """Applications in DEPLOY_FAILED (active cluster; with ``include_pending`` also the pending one),
        each with its message and its failing deployments' messages. Empty while :attr:`stale`."""
        if self.stale:
            return []
        groups = [("", self.applications)]
        if include_pending:
            groups.append(("pending cluster: ", self.pending_applications))
        found = []
        for prefix, apps in groups:
            for app in apps:
                if app.status != APP_DEPLOY_FAILED:
                    continue
                lines = [f"{prefix}application {app.name} {app.status}" + (f": {app.message}" if app.message else "")]
                for dep in app.deployments:
                    if not dep.serving:
                        lines.append(
                            f"  deployment {dep.name} {dep.status}" + (f": {dep.message}" if dep.message else "")
                        )
                found.append("\n".join(lines))
        return found

    def problems(self) -> list[str]:
        """One short line per reason the RayService is not (fully) ready; empty when :attr:`settled`."""
        out: list[str] = []
        if self.stale:
            out.append(
                f"KubeRay has not reconciled generation {self.generation} yet (observed {self.observed_generation})"
            )
        ready = self.condition("Ready")
        if ready is not None and ready.status != "True":
            out.append(_with_detail(f"condition Ready={ready.status}", ready.reason, ready.message))
        elif ready is None and self.service_status not in (None, SERVICE_RUNNING):
            out.append(f"serviceStatus {self.service_status}")
        if not self.active_cluster and not self.applications:
            out.append(
                "no active Ray cluster yet" + (f" (pending: {self.pending_cluster})" if self.pending_cluster else "")
            )
        elif not self.applications:
            out.append(f"no Serve application reported yet on cluster {self.active_cluster}")
        out.extend(_app_problems(self.applications, prefix=""))
        if self.upgrade_in_progress:
            out.append(
                "upgrade in progress" + (f": pending cluster {self.pending_cluster}" if self.pending_cluster else "")
            )
            out.extend(_app_problems(self.pending_applications, prefix="pending "))
        return out

    def summary(self) -> str:
        """The :meth:`problems` joined on one line, or "ready" when there are none."""
        problems = self.problems()
        if problems:
            return "; ".join(problems)
        return "ready" if self.ready else "not ready"


def _brief(message: str, limit: int = 240) -> str:
    """A one-line form of a possibly multi-line (traceback) message: first line … last line, clipped."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    text = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _with_detail(head: str, reason: str, message: str) -> str:
    text = head + (f" ({reason})" if reason else "")
    brief = _brief(message)
    return text + (f": {brief}" if brief else "")


def _app_problems(apps: tuple[ApplicationStatus, ...], prefix: str) -> list[str]:
    out = []
    for app in apps:
        if not app.running:
            out.append(_with_detail(f"{prefix}application {app.name} {app.status}", "", app.message))
        for dep in app.deployments:
            if not dep.serving:
                out.append(_with_detail(f"{prefix}deployment {app.name}/{dep.name} {dep.status}", "", dep.message))
    return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _applications(service_status: Mapping[str, Any]) -> tuple[ApplicationStatus, ...]:
    apps = []
    for app_name, raw in sorted(_mapping(service_status.get("applicationStatuses")).items()):
        app = _mapping(raw)
        deployments = tuple(
            DeploymentStatus(
                name=str(dep_name),
                status=_text(_mapping(dep).get("status")),
                message=_text(_mapping(dep).get("message")),
            )
            for dep_name, dep in sorted(_mapping(app.get("serveDeploymentStatuses")).items())
        )
        apps.append(
            ApplicationStatus(
                name=str(app_name),
                status=_text(app.get("status")),
                message=_text(app.get("message")),
                deployments=deployments,
            )
        )
    return tuple(apps)


def parse_rayservice(obj: Mapping[str, Any]) -> RayServiceStatus:
    """Parse a RayService object (the API's JSON as a dict) into a :class:`RayServiceStatus`.

    Accepts every KubeRay v1 status shape: ``serviceStatus`` only (≤ 1.2), ``conditions`` (≥ 1.3), both, or
    no status at all (just created). Unknown fields are ignored; missing ones become None / empty.
    """
    metadata = _mapping(obj.get("metadata"))
    status = _mapping(obj.get("status"))
    active = _mapping(status.get("activeServiceStatus"))
    pending = _mapping(status.get("pendingServiceStatus"))
    conditions = tuple(
        Condition(
            type=_text(c.get("type")),
            status=_text(c.get("status")),
            reason=_text(c.get("reason")),
            message=_text(c.get("message")),
        )
        for c in (_mapping(raw) for raw in status.get("conditions") or [])
    )
    endpoints = status.get("numServeEndpoints", status.get("NumServeEndpoints"))
    return RayServiceStatus(
        namespace=_text(metadata.get("namespace")),
        name=_text(metadata.get("name")),
        service_status=_text(status.get("serviceStatus")) or None,
        conditions=conditions,
        active_cluster=_text(active.get("rayClusterName")) or None,
        applications=_applications(active),
        pending_cluster=_text(pending.get("rayClusterName")) or None,
        pending_applications=_applications(pending),
        num_serve_endpoints=_int(endpoints),
        generation=_int(metadata.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        resource_version=_text(metadata.get("resourceVersion")) or None,
    )


# ------------------------------------------------------------------------------------- API errors


def _status_body(exc: ApiException) -> Mapping[str, Any]:
    """The ``metav1.Status`` object of an error response, or {} when the body is not one."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or not body.strip().startswith("{"):
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, Mapping) and parsed.get("kind") == "Status" else {}


def _server_message(exc: ApiException) -> str:
    message = _text(_status_body(exc).get("message"))
    if message:
        return message
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
    return (body or str(exc.reason or "")).strip()


def _raise_api_error(
    exc: ApiException, *, verb: str, resource: str, namespace: str, doing: str, not_found: str | None = None
) -> NoReturn:
    """Raise the K8sError that tells the user how to fix an API error response."""
    code = exc.status
    detail = _server_message(exc)
    if code == 404 and not_found is not None:
        raise K8sError(not_found) from exc
    if code == 401:
        raise K8sError(
            f"the Kubernetes API rejected the credentials (401 Unauthorized) while trying to {doing}: refresh the "
            "kubeconfig's credentials (log in again / renew the token) and check with `kubectl auth whoami`"
        ) from exc
    if code == 403:
        raise K8sError(
            f"forbidden: RBAC does not allow verb {verb!r} on {resource} in namespace {namespace} (needed to "
            f"{doing}): {detail}. Grant it with a Role/RoleBinding; check with "
            f"`kubectl auth can-i {verb} {resource} -n {namespace}`"
        ) from exc
    if not code:  # the client's own failures (TLS handshake, malformed request)
        raise K8sError(
            f"cannot {doing}: {exc.reason}. Check the kubeconfig's server address and certificate-authority."
        ) from exc
    raise K8sError(
        f"Kubernetes API error {code} {exc.reason or ''} while trying to {doing}: {detail}".replace("  ", " ")
    ) from exc


class _NotFound(Exception):
    """A 404 the caller of :func:`_api_call` interprets itself (``catch_404=True``)."""

    def __init__(self, exc: ApiException) -> None:
        super().__init__(str(exc))
        self.exc = exc


@contextlib.contextmanager
def _api_call(
    api: ApiClient,
    *,
    verb: str,
    resource: str,
    namespace: str,
    doing: str,
    not_found: str | None = None,
    catch_404: bool = False,
) -> Iterator[None]:
    """Translate API and connection errors raised inside the block into K8sError (a 404 into ``not_found``
    when given; into :class:`_NotFound` with ``catch_404``)."""
    try:
        yield
    except ApiException as exc:
        if catch_404 and exc.status == 404:
            raise _NotFound(exc) from exc
        _raise_api_error(exc, verb=verb, resource=resource, namespace=namespace, doing=doing, not_found=not_found)
    except urllib3.exceptions.HTTPError as exc:
        raise K8sError(
            f"cannot reach the Kubernetes API server at {api.configuration.host} to {doing}: {exc}. "
            "Check the kubeconfig's server address, the network/VPN, and `kubectl cluster-info`."
        ) from exc


def _not_found(exc_body: Mapping[str, Any], namespace: str, name: str, release: str) -> str:
    """A 404 means the object is missing when the API answered with a Status naming it; a bare
    "404 page not found" means the ray.io/v1 API itself is not served (KubeRay not installed)."""
    if exc_body.get("reason") == "NotFound" and _text(_mapping(exc_body.get("details")).get("name")) == name:
        return (
            f"RayService {namespace}/{name} not found; is the chart installed? "
            f"(helm install {release} {CHART} -n {namespace})"
        )
    return (
        f"the Kubernetes API does not serve {GROUP}/{VERSION} {PLURAL}: is the KubeRay operator (≥ 1.1) installed? "
        "(kubectl get crd rayservices.ray.io; see docs/deployment.md, Prerequisites)"
    )


def _read_rayservice(api: ApiClient, namespace: str, name: str, release: str) -> Mapping[str, Any]:
    custom = client.CustomObjectsApi(api)
    try:
        doing = f"read RayService {namespace}/{name}"
        with _api_call(api, verb="get", resource=RESOURCE, namespace=namespace, doing=doing, catch_404=True):
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except _NotFound as missing:
        raise K8sError(_not_found(_status_body(missing.exc), namespace, name, release)) from missing.exc
    if not isinstance(obj, Mapping):
        raise K8sError(f"unexpected response reading RayService {namespace}/{name}: {type(obj).__name__}")
    return obj


def get_status(api: ApiClient, namespace: str, release: str, *, name: str | None = None) -> RayServiceStatus:
    """Read the release's RayService (``GET /apis/ray.io/v1/namespaces/<ns>/rayservices/<name>``) and parse it.

    ``name`` defaults to :func:`rayservice_name` of ``release``.

    Raises:
        K8sError: the RayService does not exist ("... not found; is the chart installed? (helm install ...)"),
            the ray.io API is not served (KubeRay missing), RBAC forbids ``get`` (the message names the verb
            and resource), bad credentials, or the API server is unreachable.
    """
    name = name or rayservice_name(release)
    return parse_rayservice(_read_rayservice(api, namespace, name, release))


# ---------------------------------------------------------------------------------------- waiting


def _done(status: RayServiceStatus, settled: bool) -> bool:
    """True when the wait is over; raises K8sError when an application is DEPLOY_FAILED."""
    failures = status.failures(include_pending=settled)
    if failures:
        raise K8sError(f"RayService {status.namespace}/{status.name}: Serve deployment failed:\n" + "\n".join(failures))
    return status.settled if settled else status.ready


def wait_ready(
    api: ApiClient,
    namespace: str,
    release: str,
    timeout_s: float,
    on_update: Callable[[RayServiceStatus], None] | None = None,
    *,
    name: str | None = None,
    settled: bool = False,
) -> RayServiceStatus:
    """Block until the release's RayService is ready, and return that status.

    Reads the RayService once, then watches it (``watch=true``, ``fieldSelector=metadata.name=<name>``,
    from the read's resourceVersion, ``timeoutSeconds`` = the time left) and re-evaluates the status on every
    ADDED/MODIFIED event. When the server ends the watch (or it expires with 410 Gone, or the connection
    drops) before the deadline, the object is read again and a new watch starts; a watch that ended within
    0.5 s is restarted no sooner than 0.5 s after it began.

    "Ready" is :attr:`RayServiceStatus.ready`; with ``settled=True`` it is :attr:`RayServiceStatus.settled`
    instead (also waits for a NewCluster upgrade to finish and every application to be RUNNING).
    ``on_update`` is called (in this thread) with every status observed — the read, then each event —
    before it is evaluated. ``timeout_s`` may be fractional; it bounds the wait to within about one second.

    Raises:
        K8sError: an active application is DEPLOY_FAILED (at once, with its and its deployments' messages;
            with ``settled`` also a pending one); the deadline passed (the message lists which application
            or deployment is not RUNNING/HEALTHY and why); the RayService was deleted; or any error of
            :func:`get_status` (404, RBAC ``get``/``watch``, credentials, connectivity).
        ValueError: ``timeout_s`` is not positive.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    name = name or rayservice_name(release)
    deadline = time.monotonic() + timeout_s
    custom = client.CustomObjectsApi(api)

    def observe(obj: Mapping[str, Any]) -> RayServiceStatus:
        status = parse_rayservice(obj)
        if on_update is not None:
            on_update(status)
        return status

    while True:
        status = observe(_read_rayservice(api, namespace, name, release))
        if _done(status, settled):
            return status
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        started = time.monotonic()
        watcher = _Watch()
        events = watcher.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            field_selector=f"metadata.name={name}",
            resource_version=status.resource_version,
            timeout_seconds=max(1, math.ceil(remaining)),
            _request_timeout=(_CONNECT_TIMEOUT_S, math.ceil(remaining) + 5.0),
        )
        try:
            doing = f"watch RayService {namespace}/{name}"
            not_found = _not_found({}, namespace, name, release)
            with _api_call(api, verb="watch", resource=RESOURCE, namespace=namespace, doing=doing, not_found=not_found):
                for event in _events(events):
                    kind = event.get("type")
                    if kind == "DELETED":
                        raise K8sError(
                            f"RayService {namespace}/{name} was deleted while waiting for it to become ready"
                        )
                    if kind not in ("ADDED", "MODIFIED"):
                        continue
                    status = observe(_mapping(event.get("raw_object")))
                    if _done(status, settled):
                        return status
                    if time.monotonic() >= deadline:
                        break
        finally:
            events.close()
        now = time.monotonic()
        if now >= deadline:
            break
        if now - started < _RECONNECT_BACKOFF_S:
            time.sleep(min(_RECONNECT_BACKOFF_S - (now - started), deadline - now))
            if time.monotonic() >= deadline:
                break
    what = "settled" if settled else "ready"
    raise K8sError(f"RayService {namespace}/{name} not {what} after {timeout_s:g}s: {status.summary()}")


def _events(events: Iterator[Any]) -> Iterator[Mapping[str, Any]]:
    """The watch's events; a stream that expires (410 Gone) or breaks off just ends (the caller re-reads)."""
    try:
        for event in events:
            if isinstance(event, Mapping):
                yield event
    except ApiException as exc:
        if exc.status != 410:
            raise
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError):
        return


# -------------------------------------------------------------------------------------- endpoints

EndpointKind = Literal["grpc", "openai", "metrics", "other"]


@dataclass(frozen=True)
class Endpoint:
    """One port of one of the release's Services.

    ``internal`` is the in-cluster address ``<service>.<namespace>.svc.cluster.local:<port>``. ``external``
    lists ``<ip or hostname>:<port>`` for each ingress of a LoadBalancer Service (empty until the cloud
    provisions it: then ``pending`` is True). ``node_port`` is set for NodePort and LoadBalancer Services
    (reachable on every node's address). ``kind`` marks the quorum gRPC gateway ("grpc": port named
    ``grpc`` or appProtocol grpc), the OpenAI-compatible HTTP API ("openai": the ``-openai`` Service),
    and Ray's metrics ("metrics").
    """

    service: str
    type: str
    port_name: str
    port: int
    kind: EndpointKind
    internal: str
    external: tuple[str, ...] = ()
    node_port: int | None = None
    pending: bool = False

    @property
    def is_grpc(self) -> bool:
        return self.kind == "grpc"

    @property
    def is_openai(self) -> bool:
        return self.kind == "openai"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _port_kind(component: str, service: str, port_name: str, app_protocol: str) -> EndpointKind:
    if port_name == "grpc" or app_protocol == "grpc":
        return "grpc"
    if component == "openai" or service.endswith("-openai"):
        return "openai"
    if component == "metrics" or port_name == "metrics":
        return "metrics"
    return "other"


def get_endpoints(api: ApiClient, namespace: str, release: str) -> list[Endpoint]:
    """The release's Services (label selector :func:`release_selector`), one :class:`Endpoint` per port,
    ordered gRPC first, then OpenAI HTTP, metrics, others (then by Service name and port).

    Raises:
        K8sError: no Service matches (the chart is not installed in that namespace under that release
            name), RBAC forbids ``list`` on services, bad credentials, or the API server is unreachable.
    """
    core = client.CoreV1Api(api)
    selector = release_selector(release)
    with _api_call(
        api,
        verb="list",
        resource="services",
        namespace=namespace,
        doing=f"list the Services of release {release} in namespace {namespace}",
    ):
        services = core.list_namespaced_service(namespace, label_selector=selector)
    if not services.items:
        raise K8sError(
            f"no Services labelled {selector} in namespace {namespace}; is the chart installed? "
            f"(helm install {release} {CHART} -n {namespace}; list releases with `helm list -A`)"
        )
    endpoints = []
    for svc in services.items:
        meta, spec = svc.metadata, svc.spec
        if meta is None or spec is None or not meta.name:
            continue
        component = (meta.labels or {}).get("app.kubernetes.io/component", "")
        svc_type = spec.type or "ClusterIP"
        ingress = svc.status.load_balancer.ingress if svc.status and svc.status.load_balancer else None
        hosts: list[str] = []
        for ing in ingress or []:
            host = ing.ip or ing.hostname
            if host:
                hosts.append(host)
        for port in spec.ports or []:
            port_name = port.name or ""
            external = tuple(_host_port(host, port.port) for host in hosts) if svc_type == "LoadBalancer" else ()
            endpoints.append(
                Endpoint(
                    service=meta.name,
                    type=svc_type,
                    port_name=port_name,
                    port=port.port,
                    kind=_port_kind(component, meta.name, port_name, port.app_protocol or ""),
                    internal=f"{meta.name}.{namespace}.svc.cluster.local:{port.port}",
                    external=external,
                    node_port=port.node_port if svc_type in ("NodePort", "LoadBalancer") else None,
                    pending=svc_type == "LoadBalancer" and not external,
                )
            )
    order: dict[str, int] = {"grpc": 0, "openai": 1, "metrics": 2, "other": 3}
    endpoints.sort(key=lambda e: (order[e.kind], e.service, e.port))
    return endpoints


# ------------------------------------------------------------------------------------- formatting


def format_status(status: RayServiceStatus) -> list[str]:
    """Plain lines describing a status for the CLI (no markup): a headline, the clusters, every
    application and deployment with its message (multi-line messages shortened to first … last line),
    and, when not ready, why."""
    state = "ready" if status.ready else "NOT READY"
    if status.ready and status.upgrade_in_progress:
        state = "ready (upgrade in progress)"
    reported = []
    if status.service_status:
        reported.append(f"serviceStatus {status.service_status}")
    reported.extend(_with_detail(f"{c.type}={c.status}", c.reason, "") for c in status.conditions)
    if status.num_serve_endpoints is not None:
        reported.append(f"{status.num_serve_endpoints} serve endpoint(s)")
    lines = [
        f"RayService {status.namespace}/{status.name}: {state}" + (f" ({', '.join(reported)})" if reported else "")
    ]
    lines.append(f"  active cluster: {status.active_cluster or '-'}")
    lines.extend(_format_apps(status.applications, indent="  "))
    if status.pending_cluster or status.pending_applications:
        lines.append(f"  pending cluster: {status.pending_cluster or '-'}")
        lines.extend(_format_apps(status.pending_applications, indent="    "))
    if not status.ready:
        lines.extend(f"  ! {problem}" for problem in status.problems())
    return lines


def _format_apps(apps: tuple[ApplicationStatus, ...], indent: str) -> list[str]:
    lines = []
    for app in apps:
        brief = _brief(app.message)
        lines.append(f"{indent}application {app.name}: {app.status or '?'}" + (f" — {brief}" if brief else ""))
        for dep in app.deployments:
            brief = _brief(dep.message)
            lines.append(f"{indent}  deployment {dep.name}: {dep.status or '?'}" + (f" — {brief}" if brief else ""))
    return lines


def format_endpoints(endpoints: list[Endpoint]) -> list[str]:
    """Plain lines, one per endpoint: kind, Service/port, in-cluster address, external address."""
    lines = []
    for e in endpoints:
        outside = ", ".join(e.external) if e.external else ("<pending LoadBalancer>" if e.pending else "")
        if e.node_port is not None:
            outside = (outside + ", " if outside else "") + f"nodePort {e.node_port} on any node"
        label = {"grpc": "gRPC", "openai": "OpenAI HTTP", "metrics": "metrics", "other": "other"}[e.kind]
        lines.append(
            f"{label:<11} {e.service}:{e.port_name or e.port} ({e.type})  {e.internal}"
            + (f"  external: {outside}" if outside else "")
        )
    return lines
