"""quorum: a distributed LLM serving cluster with a typed gRPC front door.

``quorum.v1`` holds the generated wire API (from ``proto/quorum/v1/*.proto``);
``quorum.client``, ``quorum.cluster``, ``quorum.services`` and ``quorum.reasoning`` are the
``client/``, ``cluster/``, ``services/`` and ``reasoning/`` folders of the repository.
``from quorum import QuorumClient`` (or ``AsyncQuorumClient``) loads the client on first use,
so ``import quorum.cluster`` does not import grpc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quorum.client import AsyncQuorumClient, ClientTLS, QuorumClient, RetryPolicy

__version__ = "0.1.0"
__all__ = ["AsyncQuorumClient", "ClientTLS", "QuorumClient", "RetryPolicy", "__version__"]
_CLIENT_NAMES = frozenset({"AsyncQuorumClient", "ClientTLS", "QuorumClient", "RetryPolicy"})


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from quorum import client

        return getattr(client, name)
    raise AttributeError(f"module 'quorum' has no attribute {name!r}")
