"""The prefix-aware router's pure logic: block hashes, the per-replica LRU index and the choice."""

import pytest

from quorum.cluster.prefix_index import PrefixIndex, block_hashes, choose, rendezvous

BLOCK = 4


def test_hashes_cover_full_blocks_only_and_chain_the_prefix() -> None:
    a = block_hashes(list(range(10)), BLOCK)
    assert len(a) == 2  # tokens 8 and 9 are a partial block the engine does not cache
    b = block_hashes([*range(8), 99, 98, 97, 96], BLOCK)
    assert b[:2] == a  # same first 8 tokens -> same first two hashes
    c = block_hashes([0, 1, 2, 3, 4, 5, 6, 0], BLOCK)
    assert c[0] == a[0]
    assert c[1] != a[1]
    # A block equal to another prompt's block at a different position hashes differently (chained).
    assert block_hashes([4, 5, 6, 7], BLOCK)[0] != a[1]


def test_block_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="block_size"):
        block_hashes([1, 2], 0)


def test_match_counts_leading_blocks_per_replica() -> None:
    index: PrefixIndex[str] = PrefixIndex(default_capacity=100)
    long = block_hashes(list(range(16)), BLOCK)
    index.record("r1", long)
    index.record("r2", long[:1])
    assert index.match(long, ["r1", "r2", "r3"]) == {"r1": 4, "r2": 1, "r3": 0}
    other = block_hashes([7] * 16, BLOCK)
    assert index.match(other, ["r1", "r2"]) == {"r1": 0, "r2": 0}


def test_least_recently_used_blocks_are_forgotten_at_capacity() -> None:
    index: PrefixIndex[str] = PrefixIndex(default_capacity=4)
    first = block_hashes(list(range(16)), BLOCK)
    second = block_hashes(list(range(100, 116)), BLOCK)
    index.record("r", first)
    index.record("r", second)
    assert index.blocks_of("r") == 4
    assert index.match(first, ["r"]) == {"r": 0}
    assert index.match(second, ["r"]) == {"r": 4}
    index.set_capacity("r", 2)  # the engine reported a smaller KV cache
    assert index.blocks_of("r") == 2


def test_replicas_that_leave_are_forgotten() -> None:
    index: PrefixIndex[str] = PrefixIndex(default_capacity=100)
    hashes = block_hashes(list(range(8)), BLOCK)
    for replica in ("r1", "r2", "r3"):
        index.record(replica, hashes)
    index.remove("r1")
    index.retain(["r3"])
    assert index.match(hashes, ["r1", "r2", "r3"]) == {"r1": 0, "r2": 0, "r3": 2}
    assert index.blocks_of("r2") == 0


def test_choice_prefers_the_longest_match_then_load() -> None:
    index: PrefixIndex[str] = PrefixIndex(default_capacity=100)
    hashes = block_hashes(list(range(16)), BLOCK)
    index.record("r2", hashes)
    names = {r: r for r in ("r1", "r2", "r3")}
    choice = choose(hashes, {"r1": 0, "r2": 3, "r3": 1}, names, index, imbalanced_threshold=8)
    assert choice.reason == "prefix"
    assert choice.matched_blocks == 4
    assert choice.ranks == [["r2"], ["r1", "r3"]]


def test_load_guard_routes_by_load_when_imbalanced() -> None:
    index: PrefixIndex[str] = PrefixIndex(default_capacity=100)
    hashes = block_hashes(list(range(16)), BLOCK)
    index.record("r2", hashes)
    choice = choose(hashes, {"r1": 0, "r2": 9}, {"r1": "r1", "r2": "r2"}, index, imbalanced_threshold=8)
    assert choice.reason == "load"
    assert choice.ranks == [["r1", "r2"]]


def test_new_prefixes_go_to_one_owner_whichever_router_decides() -> None:
    names = {f"r{i}": f"replica-{i}" for i in range(4)}
    hashes = block_hashes(list(range(8)), BLOCK)
    owners = set()
    for _ in range(3):  # three routers, each with an empty index of its own
        choice = choose(hashes, dict.fromkeys(names, 0), names, PrefixIndex(100), imbalanced_threshold=8)
        assert choice.reason == "rendezvous"
        owners.add(choice.ranks[0][0])
    assert len(owners) == 1


def test_rendezvous_moves_only_the_keys_of_a_removed_replica() -> None:
    replicas = [f"replica-{i}" for i in range(4)]
    keys = [block_hashes([k] * BLOCK, BLOCK)[0] for k in range(200)]
    before = {key: rendezvous(key, replicas) for key in keys}
    after = {key: rendezvous(key, replicas[1:]) for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    assert moved
    assert all(before[key] == "replica-0" for key in moved)
    spread = {before[key] for key in keys}
    assert spread == set(replicas)  # every replica owns some prefixes


def test_short_prompts_and_no_candidates() -> None:
    index: PrefixIndex[str] = PrefixIndex(default_capacity=100)
    choice = choose([], {"a": 2, "b": 0}, {"a": "a", "b": "b"}, index, imbalanced_threshold=8)
    assert choice.reason == "no-prefix"
    assert choice.ranks == [["b", "a"]]
    assert choose(block_hashes([1] * 8, BLOCK), {}, {}, index, 8).ranks == []


class _Replica:
    def __init__(self, name: str, stats: dict[str, object]) -> None:
        self.name = name
        self.routing_stats = stats


def test_replicas_still_loading_get_no_traffic_while_another_serves() -> None:
    from quorum.cluster.routing import serving

    up, loading, unknown = _Replica("up", {"ready": True}), _Replica("new", {"ready": False}), _Replica("x", {})
    assert [r.name for r in serving([loading, up, unknown])] == ["up"]  # type: ignore[list-item]
    # Nobody is known to be up (a cold start): every replica stays a candidate and answers for itself.
    assert [r.name for r in serving([loading, unknown])] == ["new", "x"]  # type: ignore[list-item]
