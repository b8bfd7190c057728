"""Which replica most likely holds a prompt's KV blocks: the prefix-aware router's pure logic (no Ray).

A prompt is cut into full blocks of the engine's block size; block ``i``'s hash covers tokens
``0 .. (i+1)*block_size`` (a chain, like vLLM's own block hashes), so equal hashes mean equal
prefixes. The index remembers, per replica, the hashes of prompts it was sent, least recently used
forgotten first once it holds as many blocks as the replica's KV cache (the engine evicts the same
way), and forgets a replica as soon as it leaves the deployment.
"""

from __future__ import annotations

import hashlib
import random
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

ReplicaKey = TypeVar("ReplicaKey", bound=Hashable)
_DIGEST = 8


def block_hashes(token_ids: Sequence[int], block_size: int) -> list[bytes]:
    """Chained hashes of the prompt's full blocks (a partial last block is never cached by the engine)."""
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    hashes: list[bytes] = []
    parent = b""
    for end in range(block_size, len(token_ids) + 1, block_size):
        block = array("q", token_ids[end - block_size : end]).tobytes()
        parent = hashlib.blake2b(parent + block, digest_size=_DIGEST).digest()
        hashes.append(parent)
    return hashes


def rendezvous(key: bytes, replicas: Iterable[str]) -> str:
    """Highest-random-weight choice: every router picks the same replica for ``key``, and removing a
    replica only moves the keys it had."""
    return max(replicas, key=lambda name: hashlib.blake2b(key + name.encode(), digest_size=_DIGEST).digest())


class PrefixIndex(Generic[ReplicaKey]):
    """Block hash -> replicas believed to hold it, with a per-replica LRU bound."""

    def __init__(self, default_capacity: int) -> None:
        self._default_capacity = default_capacity
        self._holders: dict[bytes, set[ReplicaKey]] = {}
        self._blocks: dict[ReplicaKey, OrderedDict[bytes, None]] = {}
        self._capacity: dict[ReplicaKey, int] = {}

    def set_capacity(self, replica: ReplicaKey, blocks: int) -> None:
        self._capacity[replica] = max(1, blocks)
        self._evict(replica)

    def capacity(self, replica: ReplicaKey) -> int:
        return self._capacity.get(replica, self._default_capacity)

    def blocks_of(self, replica: ReplicaKey) -> int:
        return len(self._blocks.get(replica, ()))

    def match(self, hashes: Sequence[bytes], candidates: Iterable[ReplicaKey]) -> dict[ReplicaKey, int]:
        """Leading blocks of ``hashes`` each candidate holds (0 for none)."""
        matched = dict.fromkeys(candidates, 0)
        alive = set(matched)
        for depth, key in enumerate(hashes, start=1):
            alive &= self._holders.get(key, set())
            if not alive:
                break
            for replica in alive:
                matched[replica] = depth
        return matched

    def record(self, replica: ReplicaKey, hashes: Sequence[bytes]) -> None:
        """``replica`` was sent a prompt with these blocks: it holds them now (most recently used)."""
        blocks = self._blocks.setdefault(replica, OrderedDict())
        for key in hashes:
            if key in blocks:
                blocks.move_to_end(key)
            else:
                blocks[key] = None
                self._holders.setdefault(key, set()).add(replica)
        self._evict(replica)

    def remove(self, replica: ReplicaKey) -> None:
        for key in self._blocks.pop(replica, ()):
            self._drop_holder(key, replica)
        self._capacity.pop(replica, None)

    def retain(self, replicas: Iterable[ReplicaKey]) -> None:
        """Forget every replica not in ``replicas`` (the deployment's current set)."""
        keep = set(replicas)
        for replica in [r for r in self._blocks if r not in keep]:
            self.remove(replica)

    def _evict(self, replica: ReplicaKey) -> None:
        blocks = self._blocks.get(replica)
        if blocks is None:
            return
        limit = self.capacity(replica)
        while len(blocks) > limit:
            key, _ = blocks.popitem(last=False)
            self._drop_holder(key, replica)

    def _drop_holder(self, key: bytes, replica: ReplicaKey) -> None:
        holders = self._holders.get(key)
        if holders is None:
            return
        holders.discard(replica)
        if not holders:
            del self._holders[key]


@dataclass(frozen=True)
class RouteChoice(Generic[ReplicaKey]):
    """Replicas in order of preference (ties inside a rank are broken by load) and why."""

    ranks: list[list[ReplicaKey]]
    reason: str  # "prefix", "rendezvous", "load" or "no-prefix"
    matched_blocks: int = 0


def choose(
    hashes: Sequence[bytes],
    loads: Mapping[ReplicaKey, int],
    names: Mapping[ReplicaKey, str],
    index: PrefixIndex[ReplicaKey],
    imbalanced_threshold: int,
    tie_break: random.Random | None = None,
) -> RouteChoice[ReplicaKey]:
    """Where a prompt with block ``hashes`` should go, given each candidate's ongoing requests.

    1. Load guard: when the busiest and idlest candidates differ by more than ``imbalanced_threshold``
       ongoing requests, the least loaded first.
    2. The candidates holding the longest matching prefix.
    3. No match: the rendezvous-hash owner of the first block, so every router (each gateway and the
       reasoning replicas have their own index) sends a new prefix to the same replica.
    4. A prompt shorter than one block: least loaded first.
    The other candidates follow, least loaded first, in case the preferred ones are full; equally loaded
    replicas come in random order, so idle replicas share prompts without a prefix evenly.
    """
    rng = tie_break or random
    by_load = sorted(loads, key=lambda r: (loads[r], rng.random()))
    if not by_load:
        return RouteChoice(ranks=[], reason="no-prefix")
    if not hashes:
        return RouteChoice(ranks=[by_load], reason="no-prefix")
    if loads[by_load[-1]] - loads[by_load[0]] > imbalanced_threshold:
        return RouteChoice(ranks=[by_load], reason="load")
    matched = index.match(hashes, by_load)
    best = max(matched.values())
    if best > 0:
        preferred = [r for r in by_load if matched[r] == best]
        reason = "prefix"
    else:
        owner_name = rendezvous(hashes[0], (names[r] for r in by_load))
        preferred = [next(r for r in by_load if names[r] == owner_name)]
        reason = "rendezvous"
    rest = [r for r in by_load if r not in preferred]
    return RouteChoice(ranks=[preferred, rest] if rest else [preferred], reason=reason, matched_blocks=best)
