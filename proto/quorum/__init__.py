"""quorum: a distributed LLM serving cluster with a typed gRPC front door.

``quorum.v1`` holds the generated wire API (from ``proto/quorum/v1/*.proto``);
``quorum.cluster``, ``quorum.services`` and ``quorum.reasoning`` are the
``cluster/``, ``services/`` and ``reasoning/`` folders of the repository.
"""

__version__ = "0.1.0"
