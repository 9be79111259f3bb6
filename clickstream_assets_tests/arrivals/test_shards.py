"""Sharding customers across code locations: every customer in exactly one, names unique."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from clickstream_assets.arrivals.shards import Shard
from clickstream_assets.definitions import build_definitions
from clickstream_assets.settings import Settings


def test_shard_parses_from_the_environment():
    assert Settings.from_env({"CLICKSTREAM_SHARD": "1/4"}).shard == Shard(1, 4)
    assert Settings.from_env({}).shard == Shard(0, 1)
    for bad in ("4/4", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ValueError, match="CLICKSTREAM_SHARD"):
            Settings.from_env({"CLICKSTREAM_SHARD": bad})


def test_every_customer_lands_in_exactly_one_shard_and_shards_balance():
    ids = [f"c{i:04d}" for i in range(1000)]  # sequential ids: the worst case for weak hashes
    shards = [Shard(i, 4) for i in range(4)]
    owners = {cid: [s.index for s in shards if s.holds(cid)] for cid in ids}
    assert all(len(o) == 1 for o in owners.values())
    sizes = Counter(o[0] for o in owners.values())
    assert all(150 <= n <= 350 for n in sizes.values()), sizes
    assert all(Shard(0, 1).holds(cid) for cid in ids)


def test_sharded_locations_split_the_assets_and_keep_sensor_state_apart(settings):
    whole = build_definitions(settings)
    parts = [build_definitions(replace(settings, shard=Shard(i, 2))) for i in range(2)]
    keys = [set(d.resolve_asset_graph().get_all_asset_keys()) for d in parts]
    assert keys[0] | keys[1] == set(whole.resolve_asset_graph().get_all_asset_keys())
    assert not keys[0] & keys[1]
    sensors = [{s.name for s in d.sensors} for d in parts]
    assert sensors == [{"clickstream_arrivals_shard_0_of_2"}, {"clickstream_arrivals_shard_1_of_2"}]
    assert {s.name for s in whole.sensors} == {"clickstream_arrivals"}
