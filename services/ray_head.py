"""Start the local Ray head quorum runs on, and say why when it does not start.

``ray.init`` gives a local raylet a fixed 30 s to register with the GCS. On a loaded
machine that can run out, and Ray then raises with no cause and leaves the GCS, the
raylet and their helpers running. Here a failed start stops every process it spawned
and starts again (:data:`ATTEMPTS` tries in all); a final failure carries the end of
Ray's own logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import ray

from quorum.cluster.config import RayConfig

logger = logging.getLogger(__name__)

ATTEMPTS = 3
# The processes that must come up for a head node; their logs say why one did not.
HEAD_LOGS = ("gcs_server.err", "gcs_server.out", "raylet.err", "raylet.out")
LOG_TAIL_LINES = 15
STOP_GRACE_S = 10.0


class RayStartError(RuntimeError):
    """Ray did not start; the message holds Ray's error and the end of its head-node logs."""


def ray_temp_dir() -> Path:
    """Where a local Ray head writes its sessions: ``$RAY_TMPDIR/ray``, else the system temp dir's ``ray``."""
    return Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray"


def head_log_tail(temp_dir: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of each non-empty head-node log of the latest session, or '' if there are none."""
    logs = temp_dir / "session_latest" / "logs"
    parts = []
    for name in HEAD_LOGS:
        path = logs / name
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        tail = text.splitlines()[-lines:]
        if tail:
            parts.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


def stop_processes(procs: list[psutil.Process], grace_s: float = STOP_GRACE_S) -> list[int]:
    """SIGTERM those of ``procs`` still running, SIGKILL them after ``grace_s``; return their pids."""
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, left = psutil.wait_procs(alive, timeout=grace_s)
    for proc in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(left, timeout=grace_s)
    return [p.pid for p in alive]


def stop_children_since(before: set[int], grace_s: float = STOP_GRACE_S) -> list[int]:
    """Stop this process's children whose pids are not in ``before``, and their descendants; return the pids.

    SIGTERM first, then SIGKILL for those still alive after ``grace_s``. Children that were already
    running (another Ray cluster this process started) and their workers are left alone.
    """
    started = []
    for child in psutil.Process().children():
        if child.pid not in before:
            started.append(child)
            with contextlib.suppress(psutil.NoSuchProcess):
                started.extend(child.children(recursive=True))
    return stop_processes(started, grace_s)


def check_metrics_port(port: int) -> None:
    """Raise ``RayStartError`` if ``port`` cannot be bound on this machine.

    Ray's metrics agent would fail to bind it ("Address already in use") and the node would then time
    out during startup with no hint why, so a local head checks the port first.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError as exc:
            raise RayStartError(
                f"ray.metrics_export_port: port {port} is not free on this machine ({exc.strerror}); "
                "set another port, or null to let Ray pick one"
            ) from None


def start_ray(
    cfg: RayConfig,
    *,
    init: Callable[..., Any] = ray.init,
    temp_dir: Path | None = None,
    attempts: int = ATTEMPTS,
) -> None:
    """``ray.init`` for ``cfg``: start a local head (``cfg.address`` None) or connect to ``cfg.address``.

    A local head that fails to start is stopped and started again, up to ``attempts`` times in all;
    connecting to an existing cluster is tried once. Raises ``RayStartError``.
    """
    tries = attempts if cfg.address is None else 1
    if cfg.address is None and cfg.metrics_export_port is not None:
        check_metrics_port(cfg.metrics_export_port)
    for attempt in range(1, tries + 1):
        before = {p.pid for p in psutil.Process().children()}
        try:
            init(
                # "local" always starts a new head: address=None would join any Ray cluster already
                # running on this machine (one started with `ray start --head`), someone else's included.
                address=cfg.address or "local",
                num_cpus=cfg.num_cpus,
                namespace=cfg.namespace,
                include_dashboard=False,
                log_to_driver=True,
                configure_logging=True,
                logging_level=logging.WARNING,
                _metrics_export_port=cfg.metrics_export_port,
            )
            return
        except Exception as exc:
            logs = head_log_tail(temp_dir or ray_temp_dir()) if cfg.address is None else ""
            stopped = stop_children_since(before)
            ray.shutdown()
            where = "a local Ray head" if cfg.address is None else f"Ray at ray.address={cfg.address!r}"
            message = f"could not start {where} (attempt {attempt} of {tries}): {exc}"
            if stopped:
                message += f"; stopped the {len(stopped)} processes it had started"
            if attempt == tries:
                raise RayStartError(message + (f"\n{logs}" if logs else "")) from exc
            logger.warning("%s; trying again\n%s", message, logs)
