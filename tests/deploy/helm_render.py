"""Render and lint the quorum Helm chart with real Helm (the helm-sdkpy bindings).

helm-sdkpy exposes Helm's install/upgrade/lint actions but no ``helm template``
(client-only) action, and Helm's install talks to a Kubernetes API server even
to render. :class:`FakeKubeAPI` is a minimal, in-process stand-in on loopback:
it answers discovery (so Helm's REST mapper knows ConfigMap, RayService,
ServiceMonitor, ...), stores what Helm creates, and never runs anything. The
manifest Helm returns is therefore exactly what ``helm template`` /
``helm install`` would send to a real cluster, rendered by Helm's own engine,
with the chart's values.schema.json enforced by Helm.

Only the side venv (.venv-deploy, Python >= 3.12) has helm_sdkpy; the module
imports it lazily so the main venv can still type-check and lint this file.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "quorum"
CI_VALUES = CHART / "ci"
RELEASE = "quorum"
NAMESPACE = "quorum"
# The Kubernetes version the fake API server reports (.Capabilities.KubeVersion).
KUBE_VERSION = "1.34.0"

# (group, version) -> [(plural, Kind, namespaced)]: every kind the chart may render,
# plus what Helm itself touches (Secrets for release storage).
_RESOURCES: dict[tuple[str, str], list[tuple[str, str, bool]]] = {
    ("", "v1"): [
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("pods", "Pod", True),
        ("namespaces", "Namespace", False),
    ],
    ("apps", "v1"): [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    ("networking.k8s.io", "v1"): [("networkpolicies", "NetworkPolicy", True)],
    ("rbac.authorization.k8s.io", "v1"): [("roles", "Role", True), ("rolebindings", "RoleBinding", True)],
    ("ray.io", "v1"): [("rayservices", "RayService", True), ("rayclusters", "RayCluster", True)],
    ("monitoring.coreos.com", "v1"): [
        ("servicemonitors", "ServiceMonitor", True),
        ("podmonitors", "PodMonitor", True),
        ("prometheusrules", "PrometheusRule", True),
    ],
}
_KINDS = {plural: (group, version, kind) for (group, version), items in _RESOURCES.items() for plural, kind, _ in items}
_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?/?$"
)


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _discovery(path: str, port: int) -> Any | None:
    if path == "/version":
        major, minor, _ = KUBE_VERSION.split(".")
        return {
            "major": major,
            "minor": minor,
            "gitVersion": f"v{KUBE_VERSION}",
            "platform": "linux/amd64",
            "goVersion": "go1.25",
            "compiler": "gc",
        }
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{port}"}],
        }
    if path == "/apis":
        groups = []
        for group, version in _RESOURCES:
            if group:
                gv = {"groupVersion": f"{group}/{version}", "version": version}
                groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    for (group, version), items in _RESOURCES.items():
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        if path == prefix:
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            resources = [
                {"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind, "verbs": verbs}
                for plural, kind, namespaced in items
            ]
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": _group_version(group, version),
                "resources": resources,
            }
    return None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches(obj: Mapping[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value.lstrip("="):
            return False
    return True


class FakeKubeAPI:
    """A loopback HTTP server that speaks just enough of the Kubernetes API for ``helm install``."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, Any] | None:
                """The JSON body, or None for a protobuf one (Helm's own release records)."""
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                if "json" not in (self.headers.get("Content-Type") or "json"):
                    return None
                loaded = json.loads(raw.decode())
                return loaded if isinstance(loaded, dict) else {}

            def _handle(self, method: str) -> None:
                url = urlsplit(self.path)
                api.requests.append((method, self.path))
                body = self._body() if method in {"POST", "PUT", "PATCH"} else {}
                code, answer = api.handle(method, url.path, parse_qs(url.query), body)
                self._send(code, answer)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        class Server(ThreadingHTTPServer):
            # Helm's client sends discovery requests in parallel; the default listen backlog (5) drops
            # connections past it, which then wait a second for the SYN retry.
            request_queue_size = 128
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kube-api", daemon=True
        )

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig(self, namespace: str = NAMESPACE) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "fake", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
                "current-context": "fake",
            }
        )

    def __enter__(self) -> FakeKubeAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(
        self, method: str, path: str, query: Mapping[str, list[str]], body: dict[str, Any] | None
    ) -> tuple[int, Any]:
        found = _discovery(path, self.port)
        if found is not None:
            return 200, found
        match = _PATH.match(path)
        if not match or match["plural"] not in _KINDS:
            return 404, _status(404, "NotFound", f"the server could not find the requested resource ({path})")
        group, version, kind = _KINDS[match["plural"]]
        if body is None:
            # Helm's release record (a protobuf Secret): acknowledged, not kept. Each render uses a fresh
            # server and release, so nothing reads it back.
            name = match["name"] or "helm-release-record"
            record = {
                "kind": kind,
                "apiVersion": _group_version(group, version),
                "metadata": {"name": name, "resourceVersion": "1"},
            }
            return (201 if method == "POST" else 200), record
        collection = path if match["name"] is None else path.rsplit("/", 1)[0]
        with self._lock:
            if method == "GET" and match["name"] is None:
                selector = query.get("labelSelector", [""])[0]
                items = [o for key, o in self.objects.items() if key.rsplit("/", 1)[0] == collection.rstrip("/")]
                items = [o for o in items if _matches(o, selector)]
                listing = {
                    "kind": f"{kind}List",
                    "apiVersion": _group_version(group, version),
                    "metadata": {"resourceVersion": "1"},
                    "items": items,
                }
                return 200, listing
            if method == "POST":
                name = body.get("metadata", {}).get("name", "")
                key = f"{collection.rstrip('/')}/{name}"
                if key in self.objects:
                    return 409, _status(409, "AlreadyExists", f"{match['plural']} {name!r} already exists")
                meta = body.setdefault("metadata", {})
                meta.update(uid=str(uuid.uuid4()), resourceVersion="1", creationTimestamp="2026-01-01T00:00:00Z")
                if match["ns"]:
                    meta.setdefault("namespace", match["ns"])
                self.objects[key] = body
                return 201, body
            key = path.rstrip("/")
            if key not in self.objects:
                return 404, _status(404, "NotFound", f'{match["plural"]} "{match["name"]}" not found')
            if method in {"PUT", "PATCH"}:
                if method == "PUT":
                    self.objects[key] = body
                return 200, self.objects[key]
            if method == "DELETE":
                del self.objects[key]
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
            return 200, self.objects[key]


@dataclass(frozen=True)
class Rendering:
    """What Helm rendered for one set of values."""

    manifest: str
    notes: str
    release: dict[str, Any]

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(self.manifest) if doc]

    def find(self, kind: str, name_suffix: str = "") -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = self.find(kind, name_suffix)
        assert len(found) == 1, (
            f"expected one {kind} named *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
        )
        return found[0]


def _helm() -> Any:
    # Helm's client-side rate limit (QPS 5) would pause discovery; read when the library loads, so
    # scripts/deploy_check.sh exports these too.
    os.environ.setdefault("HELM_QPS", "500")
    os.environ.setdefault("HELM_BURST_LIMIT", "1000")
    import helm_sdkpy  # the side venv only

    return helm_sdkpy


@contextmanager
def fake_cluster() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        yield api


def load_values(*files: Path) -> dict[str, Any]:
    """Values files merged left to right, like ``helm -f a.yaml -f b.yaml``."""
    merged: dict[str, Any] = {}
    for file in files:
        merged = deep_merge(merged, yaml.safe_load(file.read_text()) or {})
    return merged


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def render(
    values: Mapping[str, Any] | None = None,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    chart: Path = CHART,
) -> Rendering:
    """``helm install`` into the fake API server: Helm renders the chart with ``values`` over values.yaml."""
    helm = _helm()
    with fake_cluster() as api:
        config = helm.Configuration(namespace=namespace, kubeconfig=api.kubeconfig(namespace))
        result = asyncio.run(
            helm.Install(config).run(release, str(chart), values=dict(values or {}), wait=False, timeout=60)
        )
    info = result.get("info") or {}
    return Rendering(manifest=result["manifest"], notes=info.get("notes", ""), release=result)


@contextmanager
def chart_copy(values: Mapping[str, Any] | None = None) -> Iterator[Path]:
    """A temporary copy of the chart, with ``values`` merged into its values.yaml."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / CHART.name
        shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("__pycache__"))
        if values:
            merged = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)
            (chart / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
        yield chart


def render_notes(values: Mapping[str, Any] | None = None) -> str:
    """templates/NOTES.txt rendered by Helm.

    helm-sdkpy's install result leaves the release notes out, so a copy of the chart wraps NOTES.txt
    in a named template and renders it into a ConfigMap.
    """
    with chart_copy() as chart:
        notes = (chart / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "_notes_probe.tpl").write_text(
            '{{- define "quorum.notesProbe" -}}\n' + notes + "{{- end -}}\n"
        )
        (chart / "templates" / "notes-probe.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-probe\ndata:\n"
            '  notes: {{ include "quorum.notesProbe" . | toJson }}\n'
        )
        rendering = render(values, chart=chart)
    notes_text: str = rendering.one("ConfigMap", "notes-probe")["data"]["notes"]
    return notes_text


def lint(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``helm lint`` of the chart; with ``values``, of a copy whose values.yaml has them merged in
    (helm-sdkpy's lint takes no values)."""
    helm = _helm()
    with fake_cluster() as api, chart_copy(values) as chart:
        config = helm.Configuration(namespace=NAMESPACE, kubeconfig=api.kubeconfig())
        result: dict[str, Any] = asyncio.run(helm.Lint(config).run(str(chart)))
    return result
