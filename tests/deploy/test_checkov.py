"""checkov's Kubernetes checks over everything the chart renders.

checkov knows nothing about RayService, so the Ray pod templates are also written out as Pod objects:
the pod checks (security context, resources, probes, image, service account token, network policy
coverage) then see what KubeRay will create. Run offline (--skip-download), checkov gives no severities,
so the bar is zero failed checks; the only skips are the chart's `checkov.io/skipN` pod annotations
(templates/_helpers.tpl, quorum.checkovSkips), each with its justification, all listed here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import PROFILES
from .helm_render import load_values, render
from .kube import as_pods

# Every skip the chart may annotate, with why (the annotation carries the same reason).
ALLOWED_SKIPS = {
    "CKV_K8S_8": "liveness probe: KubeRay injects Ray-aware probes into Ray containers that define none",
    "CKV_K8S_9": "readiness probe: KubeRay injects Ray-aware probes (raylet/GCS, Serve proxy on RayService pods)",
    "CKV_K8S_40": "high UID: Ray images run as uid 1000 (user ray), which owns the image's Python install",
    "CKV_K8S_43": "image digest: only while image.digest is empty (tag = chart appVersion); gone with a digest",
    "CKV_K8S_15": "pull policy Always: only while pullPolicy is not Always; multi-GB image pinned by tag/digest",
    "CKV_K8S_38": "service account token: only on the head with the Ray autoscaler, whose sidecar calls the API",
    "CKV_K8S_35": "secret as env: only for hub.token without asFile (HF_TOKEN); asFile mounts it instead",
}
# Everything switched on, so the scan also covers the chart-created Secrets and optional objects.
ALL_FEATURES: dict[str, Any] = {
    "auth": {"enabled": True, "tokens": ["t" * 32]},
    "tls": {"enabled": True, "cert": "CERT", "key": "KEY", "clientAuth": True},
    "hub": {"token": {"value": "hf_token"}},
    "openai": {"enabled": True},
    "metrics": {"serviceMonitor": {"enabled": True}},
    "ray": {"autoscaler": {"enabled": True}},
}


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("checkov")
    cases = {name: load_values(*files) for name, files in PROFILES.items()}
    cases["all-features"] = ALL_FEATURES
    for name, values in cases.items():
        rendering = render(values)
        folder = root / name
        folder.mkdir()
        (folder / "manifest.yaml").write_text(rendering.manifest)
        (folder / "ray-pods.yaml").write_text(yaml.safe_dump_all(as_pods(rendering), sort_keys=False))
    checkov = Path(sys.executable).with_name("checkov")
    command = [str(checkov), "-d", str(root), "--framework", "kubernetes", "-o", "json", "--compact", "--skip-download"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    (kubernetes,) = [r for r in reports if r["check_type"] == "kubernetes"]
    result: dict[str, Any] = kubernetes
    return result


def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['check_name']} -- {c['resource']} ({c['file_path']}, severity {c.get('severity')})"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov_report["summary"]["parsing_errors"] == 0


def test_checkov_scanned_the_ray_pods(checkov_report: dict[str, Any]) -> None:
    passed = checkov_report["results"]["passed_checks"]
    pods = {(c["file_path"], c["resource"]) for c in passed if c["resource"].startswith("Pod.")}
    # default: head + 1 worker group, cpu-dev: head, gpu: head + 2 groups, all-features: head + 1 group.
    assert len(pods) == 8, pods
    pod_checks = {c["check_id"] for c in passed if c["resource"].startswith("Pod.")}
    # Security context, capabilities, privilege escalation, resources, seccomp, network policy coverage.
    assert {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_28", "CKV_K8S_37", "CKV_K8S_11", "CKV_K8S_13"} <= pod_checks
    assert {"CKV_K8S_31", "CKV2_K8S_6"} <= pod_checks


def test_every_skip_is_allowed_and_justified(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped, "the chart's pod annotations should be read as skips"
    for check in skipped:
        assert check["check_id"] in ALLOWED_SKIPS, check["check_id"]
        assert len(check["check_result"].get("suppress_comment") or "") > 20, check
