from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from quorum.reasoning.rag.rwlock import ReadWriteLock


def test_readers_share_and_writers_exclude() -> None:
    lock = ReadWriteLock()
    inside: list[str] = []
    both_readers_in = threading.Barrier(2, timeout=5)

    def reader() -> None:
        with lock.read():
            inside.append("r")
            both_readers_in.wait()  # deadlocks (times out) unless two readers hold the lock at once
            inside.remove("r")

    def writer() -> None:
        with lock.write():
            assert inside == [], "a writer is alone"
            inside.append("w")
            time.sleep(0.01)
            inside.remove("w")

    with ThreadPoolExecutor(max_workers=5) as pool:
        futures = [pool.submit(reader) for _ in range(2)] + [pool.submit(writer) for _ in range(3)]
        for future in futures:
            future.result(timeout=10)  # re-raises a broken barrier or a failed assertion
    assert inside == []


def test_a_waiting_writer_goes_before_new_readers() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    reading = threading.Event()
    release = threading.Event()

    def first_reader() -> None:
        with lock.read():
            reading.set()
            release.wait(5)

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("late reader")

    holder = threading.Thread(target=first_reader)
    holder.start()
    reading.wait(5)
    blocked_writer = threading.Thread(target=writer)
    blocked_writer.start()
    time.sleep(0.05)  # the writer is waiting now
    blocked_reader = threading.Thread(target=late_reader)
    blocked_reader.start()
    time.sleep(0.05)
    assert order == [], "both wait for the first reader"
    release.set()
    for thread in (holder, blocked_writer, blocked_reader):
        thread.join(timeout=5)
    assert order == ["writer", "late reader"]
