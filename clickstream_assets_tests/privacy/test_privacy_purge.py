"""purge-raw: a suppressed person's lines leave the raw files (local folder and S3, gzip and
plain); every other line stays byte for byte, malformed ones too; a purge that fails midway
(a store write that really fails) leaves whole files, and a rerun converges to the result of
a purge that never failed."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone

import pytest

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.privacy.purge import purge_raw
from clickstream_assets.privacy.suppression import Suppression
from clickstream_assets.stores.event_store import event_store_from_url
from clickstream_assets.stores.local_event_store import LocalEventStore
from clickstream_assets.testing.s3_seed import create_bucket

CUSTOMER = CustomerConfig(customer_id="acme", start=datetime(2026, 11, 1, tzinfo=timezone.utc))
GONE = Suppression(frozenset({"alice"}), frozenset({"anon-a1"}), version=1)
ALICE = [b'{"type":"track","messageId":"m1","userId":"alice","event":"x"}',
         b'{"type":"page","messageId":"m2","anonymousId":"anon-a1"}\r',
         b'{"type":"alias","messageId":"m3","userId":"u-new","previousId":"alice"}']
OTHERS = [b'{"type":"track","messageId":"m4","userId":"bob","event":"x","properties":'
          b'{"friend":"alice"}}', b'{"type": "track", "userId": "alice"',  # malformed: kept
          b'["alice"]', b'', b'  {"type":"identify","userId":"carol"}\r']


def files(n: int = 6) -> dict[str, bytes]:
    """n files over 3 hours, gz and plain, each mixing alice's lines with others'."""
    out = {}
    for i in range(n):
        lines = [OTHERS[i % len(OTHERS)], ALICE[i % len(ALICE)], OTHERS[(i + 1) % len(OTHERS)]]
        body = b"\n".join(lines) + (b"\n" if i % 2 else b"")
        key = f"acme/2026/11/20/{10 + i % 3:02d}/f{i}.json" + (".gz" if i % 2 else "")
        out[key] = gzip.compress(body) if i % 2 else body
    out["other/2026/11/20/10/f.json"] = ALICE[0] + b"\n"  # another customer: untouched
    return out


def content(store, key: str) -> bytes:
    data = store.open(key).read()
    return gzip.decompress(data) if key.endswith(".gz") else data


def expected(body: bytes) -> bytes:
    return b"\n".join(line for line in body.split(b"\n") if line not in ALICE)


class FailingStore(LocalEventStore):
    """A local store whose k-th write fails as a full disk would (after the temp file is
    half written: the rename never happens)."""

    def __init__(self, root, fail_at: int):
        super().__init__(root)
        self.writes, self.fail_at = 0, fail_at

    def write(self, key: str, data: bytes) -> None:
        self.writes += 1
        if self.writes == self.fail_at:
            path = self._path(key)
            path.with_name(f".{path.name}.tmp").write_bytes(data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        super().write(key, data)


def seed(store, data: dict[str, bytes]) -> None:
    for key, body in data.items():
        store.write(key, body)


def test_purge_removes_only_the_persons_lines(tmp_path):
    store = LocalEventStore(tmp_path / "events")
    data = files()
    seed(store, data)
    result = purge_raw(store, CUSTOMER, GONE)
    assert result.files_scanned == 6 and result.files_rewritten == 6
    assert result.lines_removed == 6
    for key, body in data.items():
        plain = gzip.decompress(body) if key.endswith(".gz") else body
        want = plain if key.startswith("other/") else expected(plain)
        assert content(store, key) == want, key
    assert purge_raw(store, CUSTOMER, GONE).files_rewritten == 0  # converged


def test_interrupted_purge_reruns_to_the_same_files(tmp_path):
    data = files(9)
    reference = LocalEventStore(tmp_path / "reference")
    seed(reference, data)
    purge_raw(reference, CUSTOMER, GONE)
    store = FailingStore(tmp_path / "events", fail_at=len(data) + 4)  # the 4th purge write
    seed(store, data)
    with pytest.raises(OSError):
        purge_raw(store, CUSTOMER, GONE)
    states = [content(store, k) for k in data]
    assert sum(s != (gzip.decompress(b) if k.endswith(".gz") else b)
               for s, (k, b) in zip(states, data.items())) == 3  # 3 purged, the rest whole
    for key, body in data.items():  # each file is either as it was or purged: never half
        plain = gzip.decompress(body) if key.endswith(".gz") else body
        assert content(store, key) in (plain, expected(plain))
    rerun = purge_raw(store, CUSTOMER, GONE)
    assert rerun.files_rewritten == 6 and rerun.lines_removed == 6
    for key in data:
        assert content(store, key) == content(reference, key)
    assert sorted(f.key for f in store.list_prefix("acme/") if not f.key.split("/")[-1]
                  .startswith(".")) == sorted(k for k in data if k.startswith("acme/"))


def test_a_damaged_gzip_is_left_untouched(tmp_path):
    store = LocalEventStore(tmp_path / "events")
    whole = gzip.compress(b"\n".join(ALICE + OTHERS))
    store.write("acme/2026/11/20/10/bad.json.gz", whole[: len(whole) - 12])
    result = purge_raw(store, CUSTOMER, GONE)
    assert result.files_unreadable == 1 and result.unreadable == ["acme/2026/11/20/10/bad.json.gz"]
    assert store.open("acme/2026/11/20/10/bad.json.gz").read() == whole[: len(whole) - 12]


def test_purge_on_s3_with_a_failing_put(s3):
    client = s3.client()
    create_bucket(client)
    store = event_store_from_url(
        f"s3://clickstream-events/landing?endpoint_url={s3.endpoint_url}")
    data = files()
    seed(store, data)
    puts = {"n": 0}

    def fail_third_put(params, **_):  # a real failure of the real client's 3rd PUT
        puts["n"] += 1
        if puts["n"] == 3:
            raise ConnectionError("connection reset during PUT")

    store.client.meta.events.register("before-call.s3.PutObject", fail_third_put)
    with pytest.raises(ConnectionError):
        purge_raw(store, CUSTOMER, GONE)
    rerun = purge_raw(store, CUSTOMER, GONE)
    assert rerun.files_rewritten == 4 and rerun.lines_removed == 4
    for key, body in data.items():
        plain = gzip.decompress(body) if key.endswith(".gz") else body
        want = plain if key.startswith("other/") else expected(plain)
        assert content(store, key) == want, key
    head = client.head_object(Bucket="clickstream-events", Key="landing/" + next(iter(data)))
    assert head.get("ServerSideEncryption")  # rewritten objects stay encrypted at rest
