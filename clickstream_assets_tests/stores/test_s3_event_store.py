"""The S3 event store against moto's S3 server over HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from clickstream_assets.stores.event_store import event_store_from_url, hour_prefix
from clickstream_assets.stores.s3_event_store import S3EventStore
from clickstream_assets.testing.s3_seed import create_bucket, event_body, history, put_direct

HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)


@pytest.fixture
def store(s3) -> S3EventStore:
    create_bucket(s3.client())
    return event_store_from_url(f"s3://clickstream-events/landing?endpoint_url={s3.endpoint_url}")


def test_url_selects_s3_with_endpoint_and_root(store, s3):
    assert isinstance(store, S3EventStore)
    assert (store.bucket, store.root, store.endpoint_url) == (
        "clickstream-events", "landing/", s3.endpoint_url)
    assert store.uri == "s3://clickstream-events/landing"
    assert store.client.meta.config.retries["mode"] == "adaptive"


def test_url_refuses_credentials_and_unknown_options():
    with pytest.raises(ValueError, match="credential chain"):
        S3EventStore.from_url("s3://AKIA:secret@bucket/prefix")
    with pytest.raises(ValueError, match="unknown S3 URL options"):
        S3EventStore.from_url("s3://bucket/prefix?aws_secret_access_key=x")
    with pytest.raises(ValueError, match="needs a bucket"):
        S3EventStore.from_url("s3:///prefix")


def test_endpoint_from_aws_endpoint_url_env(s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)
    create_bucket(s3.client())
    store = S3EventStore.from_url("s3://clickstream-events")
    store.write("acme/2026/11/20/10/a.json", b"{}\n")
    assert [f.key for f in store.list_prefix("acme/")] == ["acme/2026/11/20/10/a.json"]


def test_write_list_and_stream_lines_plain_and_gzip(store, s3):
    body = event_body("acme", HOUR, 30)
    store.write(hour_prefix("acme", HOUR) + "a.json", body)
    store.write(hour_prefix("acme", HOUR) + "b.json.gz", event_body("acme", HOUR, 30, gz=True))
    files = store.list_hour("acme", HOUR)
    assert [f.name for f in files] == ["a.json", "b.json.gz"]
    assert files[0].size == len(body) and files[0].etag
    # keys are store-relative: the root prefix is in the bucket, not in the key
    assert s3.client().head_object(Bucket="clickstream-events",
                                   Key="landing/" + files[0].key)["ContentLength"] == len(body)
    assert list(store.open_lines(files[0].key)) == body.rstrip(b"\n").split(b"\n")
    assert list(store.open_lines(files[1].key)) == body.rstrip(b"\n").split(b"\n")


def test_list_hours_reads_only_the_range_in_one_call_per_customer(store):
    first = HOUR - timedelta(days=20)
    put_direct("clickstream-events", history(["acme", "acme_eu"], first, 20 * 24, root="landing"))
    store.write(hour_prefix("acme", HOUR) + "new.json", b"{}\n")
    store.requests.calls.clear()
    got = store.list_hours("acme", HOUR - timedelta(hours=2), HOUR)
    assert sorted(got) == [HOUR - timedelta(hours=2), HOUR - timedelta(hours=1), HOUR]
    assert [f.name for f in got[HOUR]] == ["new.json"]
    assert all(f.key.startswith("acme/") for fs in got.values() for f in fs)  # not acme_eu
    assert dict(store.requests.calls) == {"ListObjectsV2": 1}


def test_list_hours_pages_through_a_dense_range(store):
    put_direct("clickstream-events", history(["acme"], HOUR - timedelta(hours=2), 3,
                                             files_per_hour=700, root="landing"))
    store.requests.calls.clear()
    got = store.list_hours("acme", HOUR - timedelta(hours=1), HOUR)
    assert [len(got[h]) for h in sorted(got)] == [700, 700]
    assert store.requests.calls["ListObjectsV2"] == 2


def test_s3_resource_backed_store(s3):
    from dagster_aws.s3 import S3Resource  # noqa: PLC0415

    from clickstream_assets.defs.resources import S3EventStoreResource  # noqa: PLC0415

    create_bucket(s3.client())
    resource = S3EventStoreResource(url="s3://clickstream-events/landing",
                                    s3=S3Resource(endpoint_url=s3.endpoint_url,
                                                  region_name="us-east-1"))
    store = resource.get_store()
    store.write(hour_prefix("acme", HOUR) + "a.json", b"{}\n")
    assert [f.name for f in store.list_hour("acme", HOUR)] == ["a.json"]
    assert store.client.meta.config.retries["mode"] == "adaptive"
