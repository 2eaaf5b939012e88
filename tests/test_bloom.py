"""BloomFilter through the public API: no false negatives, measured FPR, checked file format,
merge, and real concurrency with the GIL released."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgingest import AgingBloomFilter, BloomFilter, version_keys
from tgingest.errors import BloomFormatError, InvalidInputError, TgIngestError


def _keys(n: int, seed: int) -> array:
    rng = random.Random(seed)
    return array("Q", (rng.getrandbits(64) for _ in range(n)))


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=500))
@settings(max_examples=100, deadline=None)
def test_no_false_negatives(keys: list[int]) -> None:
    f = BloomFilter(1000, 0.001)
    f.check_and_add(keys)
    assert all(k in f for k in keys)
    assert set(f.contains_many(keys)) <= {1}


def test_measured_fpr_at_capacity() -> None:
    capacity = 200_000
    f = BloomFilter(capacity, 0.001)
    f.check_and_add(_keys(capacity, 1))
    probes = _keys(1_000_000, 2)
    fpr = sum(f.contains_many(probes)) / len(probes)
    print(f"measured FPR at capacity {capacity}: {fpr:.5f}")
    assert fpr <= 0.001


def test_check_and_add_flags_repeats_within_and_across_batches() -> None:
    f = BloomFilter(1000)
    assert f.check_and_add([1, 2, 1]) == b"\x01\x01\x00"
    assert f.check_and_add([2, 3]) == b"\x00\x01"
    # Sequential ints and message-version keys both work; buffers need no Python ints.
    keys = version_keys([1, 1], [10, 11], [None, 5])
    assert f.check_and_add(keys) == b"\x01\x01"
    assert f.check_and_add(keys) == b"\x00\x00"


def test_save_load_round_trip_across_processes(tmp_path) -> None:
    f = BloomFilter(50_000, 0.001)
    f.check_and_add(_keys(20_000, 3))
    path = tmp_path / "f.bloom"
    f.save(path)
    script = (
        "import sys; from tgingest import BloomFilter; "
        "g = BloomFilter.load(sys.argv[1]); sys.stdout.buffer.write(g.to_bytes())"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)], check=True, capture_output=True
    ).stdout
    assert out == f.to_bytes() == path.read_bytes()
    assert BloomFilter.from_bytes(out).to_bytes() == out


def test_corrupt_or_foreign_files_are_clear_errors(tmp_path) -> None:
    data = bytearray(BloomFilter(1000).to_bytes())
    for bad in (b"", b"not a bloom filter at all", bytes(data[:-1])):
        with pytest.raises(BloomFormatError):
            BloomFilter.from_bytes(bad)
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(BloomFormatError, match="checksum"):
        BloomFilter.from_bytes(bytes(data))
    with pytest.raises(ValueError):  # also a ValueError for callers that catch that
        BloomFilter.from_bytes(b"x")
    with pytest.raises(OSError) as e:
        BloomFilter.load(tmp_path / "missing.bloom")
    assert isinstance(e.value, TgIngestError)


def test_bad_parameters() -> None:
    with pytest.raises(InvalidInputError):
        BloomFilter(0)
    with pytest.raises(InvalidInputError):
        BloomFilter(10, 0.9)
    with pytest.raises(TypeError, match="unsigned 64-bit"):
        BloomFilter(10).check_and_add(["a"])


def test_merge_is_union() -> None:
    a, b = BloomFilter(10_000), BloomFilter(10_000)
    a.check_and_add(range(0, 1000))
    b.check_and_add(range(1000, 2000))
    a.merge(b)
    assert all(k in a for k in range(2000))
    with pytest.raises(InvalidInputError):
        a.merge(BloomFilter(20_000))


def test_one_filter_shared_by_threads() -> None:
    f = BloomFilter(400_000, 0.001)
    sets = [_keys(100_000, 10 + i) for i in range(4)]
    results: list[bytes] = [b""] * 4

    def work(i: int) -> None:
        results[i] = f.check_and_add(sets[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for keys in sets:
        assert set(f.contains_many(keys)) == {1}
    new = sum(sum(r) for r in results)
    assert new >= 400_000 * 0.99  # only false positives may report "seen"


def test_gil_is_released_during_a_large_batch() -> None:
    """With a huge switch interval the main thread can only run while the worker is inside
    the call if the call released the GIL; otherwise it first runs after `done` is set."""
    f = BloomFilter(5_000_000, 0.001)
    keys = _keys(3_000_000, 5)
    started, done = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        f.check_and_add(keys)
        done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        t = threading.Thread(target=work)
        t.start()
        started.wait()
        ticks = 0
        while not done.is_set() and ticks < 20_000:
            ticks += 1
        ran_during_call = not done.is_set()
    finally:
        sys.setswitchinterval(old)
        t.join()
    assert ran_during_call and ticks == 20_000


def test_aging_filter_forgets_after_the_window() -> None:
    day = 86_400
    f = AgingBloomFilter(10_000, 0.001, generations=4, window_seconds=7 * day, now=0)
    assert f.check_and_add([42], now=0) == b"\x01"
    assert f.contains(42, now=6 * day)
    assert f.check_and_add([42], now=6 * day) == b"\x00"
    assert not f.contains(42, now=30 * day)
    g = AgingBloomFilter.from_bytes(f.to_bytes())
    assert g.to_bytes() == f.to_bytes()
