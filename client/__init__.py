"""The quorum client: the SDK (sync and asyncio), the ``quorum`` command line, LangChain adapters and
Kubernetes operations. It imports nothing of the server: ``pip install quorum`` is enough to use it.

    from quorum.client import QuorumClient   # or: from quorum import QuorumClient
"""

from .retry import NO_RETRY, RetryPolicy
from .sdk import AsyncQuorumClient, ClientTLS, QuorumClient, model_health_name, sampling

__all__ = ["NO_RETRY", "AsyncQuorumClient", "ClientTLS", "QuorumClient", "RetryPolicy", "model_health_name", "sampling"]
