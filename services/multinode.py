"""A Ray cluster of a head and worker nodes on this one machine, to run quorum across Ray nodes.

Each node is a separate raylet with its own logical CPUs and node labels (Ray's
``ray.cluster_utils.Cluster``), so Serve places replicas on nodes, a node can be lost
(its raylet and every process on it killed) and another added, as on separate machines.
:meth:`MultiNodeRay.configure` fits a quorum config to it: the gateway and reasoning
replicas on the head, each model's replicas on worker nodes, at most one per node.

Use it as a context manager; on exit Serve, Ray and every process the nodes started are
stopped::

    with MultiNodeRay(workers=2) as nodes, LocalCluster(nodes.configure(config)) as cluster:
        ...
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psutil
import ray
from ray import serve
from ray.cluster_utils import Cluster

from quorum.cluster.config import QuorumConfig, RayConfig

from .ray_head import ATTEMPTS, start_ray, stop_children_since, stop_processes

logger = logging.getLogger(__name__)

ROLE_LABEL = "quorum-role"
HEAD_ROLE = "head"  # gateway and reasoning replicas
ENGINE_ROLE = "engine"  # LLM-server replicas
# Ray's default object store (30 % of memory) per node would be far too much for several nodes on one host.
OBJECT_STORE_BYTES = 150 * 1024 * 1024


@dataclass(frozen=True)
class WorkerNode:
    """A worker node this object started: its Ray node id and the raylet's handle."""

    node_id: str
    node: Any  # ray._private.node.Node (not typed: Ray is not type-checked)


def node_processes(node: Any) -> list[psutil.Process]:
    """Every process a node started (raylet, agents) and everything below them (workers, engine processes)."""
    found: list[psutil.Process] = []
    for infos in node.all_processes.values():
        for info in infos:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(info.process.pid)
                found.append(proc)
                found.extend(proc.children(recursive=True))
    return found


class MultiNodeRay:
    """A head node plus worker nodes on this machine (see the module docstring)."""

    def __init__(self, workers: int = 2, head_cpus: int = 2, worker_cpus: int = 2, namespace: str = "quorum") -> None:
        self.num_workers = workers
        self.head_cpus = head_cpus
        self.worker_cpus = worker_cpus
        self.namespace = namespace
        self.workers: list[WorkerNode] = []
        self._cluster: Cluster | None = None
        self._temp_dir = ""

    @property
    def address(self) -> str:
        if self._cluster is None:
            raise RuntimeError("the multi-node cluster is not started")
        return str(self._cluster.address)

    def start(self) -> None:
        """Start the head, connect this process to it, then start the worker nodes."""
        # NOTE: a short private temp dir keeps the nodes' socket paths short and their logs apart from
        # other Ray clusters on the machine.
        self._temp_dir = tempfile.mkdtemp(prefix="quorum-ray-")
        self._cluster = Cluster()
        self._add_node(
            "the head node",
            num_cpus=self.head_cpus,
            labels={ROLE_LABEL: HEAD_ROLE},
            include_dashboard=False,
            temp_dir=self._temp_dir,
            object_store_memory=OBJECT_STORE_BYTES,
        )
        # NOTE: the driver connects while the head is the only node: with several raylets on one IP,
        # ray.init could attach it to a worker's raylet, which dies with that node.
        start_ray(RayConfig(address=self.address, namespace=self.namespace))  # type: ignore[call-arg]
        for _ in range(self.num_workers):
            self.add_worker()

    def add_worker(self) -> WorkerNode:
        """Start one more worker node (its own raylet, ``worker_cpus`` logical CPUs, the engine label)."""
        node = self._add_node(
            "a worker node",
            num_cpus=self.worker_cpus,
            labels={ROLE_LABEL: ENGINE_ROLE},
            temp_dir=self._temp_dir,
            object_store_memory=OBJECT_STORE_BYTES,
        )
        worker = WorkerNode(node_id=str(node.node_id), node=node)
        self.workers.append(worker)
        logger.info("worker node %s up", worker.node_id)
        return worker

    def _add_node(self, what: str, **node_args: Any) -> Any:
        """``Cluster.add_node``, tried up to ATTEMPTS times: on a loaded machine a raylet can miss Ray's fixed
        deadline to register with the GCS; the processes of a failed try are stopped before the next."""
        if self._cluster is None:
            raise RuntimeError("the multi-node cluster is not started")
        for attempt in range(1, ATTEMPTS + 1):
            before = {p.pid for p in psutil.Process().children()}
            try:
                return self._cluster.add_node(**node_args)
            except Exception as exc:
                stopped = stop_children_since(before)
                message = f"{what} did not start (attempt {attempt} of {ATTEMPTS}): {exc}"
                if attempt == ATTEMPTS:
                    raise RuntimeError(message) from exc
                logger.warning("%s; stopped its %d processes, trying again", message, len(stopped))
        raise AssertionError("unreachable")

    def kill_worker(self, worker: WorkerNode) -> None:
        """Lose a worker node: SIGKILL its raylet and every process on it, as when a machine dies."""
        if self._cluster is None:
            raise RuntimeError("the multi-node cluster is not started")
        procs = node_processes(worker.node)
        self._cluster.remove_node(worker.node, allow_graceful=False)
        self.workers.remove(worker)
        # Ray kills the node's own processes; a worker's children (a vLLM engine process) may outlive it.
        for pid in stop_processes(procs):
            logger.info("stopped process %d left over from node %s", pid, worker.node_id)

    def configure(self, config: QuorumConfig) -> QuorumConfig:
        """``config`` on this cluster: front door on the head, each model's replicas on distinct worker nodes."""
        models = [
            model.model_copy(
                update={
                    "deployment": model.deployment.model_copy(
                        update={"max_replicas_per_node": 1, "label_selector": {ROLE_LABEL: ENGINE_ROLE}}
                    )
                }
            )
            for model in config.models
        ]
        head = {ROLE_LABEL: HEAD_ROLE}
        return config.model_copy(
            update={
                "models": models,
                "gateway": config.gateway.model_copy(update={"label_selector": head}),
                "reasoning": config.reasoning.model_copy(update={"label_selector": head}),
                "ray": config.ray.model_copy(update={"address": self.address, "namespace": self.namespace}),
            }
        )

    def shutdown(self, keep_logs: bool = False) -> None:
        """Stop Serve, disconnect, stop every node and whatever their processes left behind.

        The nodes' temp dir (their logs) is removed unless ``keep_logs``.
        """
        if self._cluster is None:
            return
        procs = [proc for worker in self.workers for proc in node_processes(worker.node)]
        if self._cluster.head_node is not None:
            procs += node_processes(self._cluster.head_node)
        if ray.is_initialized():
            with contextlib.suppress(Exception):  # a Serve that did not start has nothing to stop
                serve.shutdown()
            ray.shutdown()
        self._cluster.shutdown()
        self._cluster = None
        self.workers = []
        stop_processes(procs)
        if keep_logs:
            logger.warning("the Ray nodes' logs are kept in %s", self._temp_dir)
        else:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> MultiNodeRay:
        try:
            self.start()
        except BaseException:
            self.shutdown(keep_logs=True)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown(keep_logs=exc is not None)
