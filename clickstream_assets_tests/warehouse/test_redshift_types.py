"""Redshift types, varchar sizing and the schema-evolution plan (pure functions)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from clickstream_assets.warehouse.redshift_types import (
    ColumnLimitExceeded,
    ColumnType,
    cast_expr,
    column_types,
    plan_evolution,
    rebuild_column_sql,
    varchar_size,
)

INT, FLOAT, BOOL, TS = (ColumnType("integer"), ColumnType("float"), ColumnType("boolean"),
                        ColumnType("timestamp"))


def s(n: int) -> ColumnType:
    return ColumnType("string", n)


def test_varchar_sizes_are_powers_of_two_within_redshift_limits():
    assert [varchar_size(n) for n in (0, 256, 257, 5000, 40000, 65535)] == [
        256, 256, 512, 8192, 65535, 65535]


def test_column_types_measure_bytes_not_characters():
    table = pa.table({"s": ["é" * 200, None], "n": [1, 2], "f": [1.5, None]})
    assert column_types(table) == {"s": s(512), "n": INT, "f": FLOAT}


def test_values_over_the_varchar_limit_are_refused():
    with pytest.raises(ValueError, match="65535"):
        column_types(pa.table({"s": ["x" * 70000]}))


def test_plan_creates_adds_and_widens():
    assert plan_evolution("t", {}, {"a": INT}).create
    plan = plan_evolution("t", {"a": INT, "b": s(256), "c": BOOL},
                          {"a": FLOAT, "b": s(1024), "c": BOOL, "d": TS})
    assert plan.add == [("d", TS)]
    assert plan.rebuild == [("a", INT, FLOAT), ("b", s(256), s(1024))]
    assert plan.changed_types == ["a"]
    assert plan.target == {"a": FLOAT, "b": s(1024), "c": BOOL, "d": TS}


def test_anything_mixed_with_a_string_becomes_a_string():
    plan = plan_evolution("t", {"a": TS, "b": s(4096)}, {"a": s(512), "b": INT})
    assert plan.rebuild == [("a", TS, s(512))]
    assert plan.target["b"] == s(4096)  # strings stay strings; incoming ints are cast


def test_the_sort_key_cannot_be_rebuilt():
    with pytest.raises(ValueError, match="sort key"):
        plan_evolution("t", {"received_at": TS}, {"received_at": s(256)},
                       frozenset({"received_at"}))


def test_column_limit_is_a_clear_error():
    with pytest.raises(ColumnLimitExceeded, match="'t' would have 1601 columns"):
        plan_evolution("t", {f"c{i}": INT for i in range(1600)}, {"new": INT})


def test_casts_redshift_can_run():
    assert cast_expr('"c"', BOOL, s(256)) == (
        "CASE WHEN \"c\" THEN 'true' WHEN NOT \"c\" THEN 'false' END")
    assert cast_expr('"c"', TS, s(256)).startswith('TO_CHAR("c"')
    assert cast_expr('"c"', INT, FLOAT) == 'CAST("c" AS DOUBLE PRECISION)'
    assert cast_expr('"c"', s(256), s(512)) == '"c"'


def test_rebuild_is_add_update_drop_rename():
    sql = rebuild_column_sql('"s"."t"', 'we"ird', INT, FLOAT)
    assert [q.split()[3] if q.startswith("ALTER") else "UPDATE" for q in sql] == [
        "ADD", "UPDATE", "DROP", "RENAME"]
    assert '"we""ird"' in sql[2] and sql[3].endswith('TO "we""ird"')
