"""The Grafana emulator (tests/grafana_emulator/) against the upstream code it mirrors.

The tables are ported from the upstream tests at the pinned releases, so a row here is a promise
the real plugin makes: grafana-clickhouse-datasource 4.11.2 `pkg/macros/macros_test.go` and
`src/data/CHDatasource.test.ts`, and grafana-plugin-sdk-go 0.280.0 (the sdk the plugin's go.mod
names at that tag) `data/sqlutil/macros_test.go`. Rows marked "from the source" have no upstream
test; their expected text is read off the upstream function.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.grafana_emulator import (
    ALL,
    PLUGIN,
    PLUGIN_VERSION,
    ExpandError,
    TimeRange,
    Variable,
    apply_conditional_all,
    expand,
    interpolate_macros,
    replace_variables,
)
from tests.grafana_emulator.macros import Macro, parse_args

ROOT = Path(__file__).resolve().parents[2]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def epoch_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


# -- the pin ----------------------------------------------------------------------------------


def test_the_emulator_mirrors_the_plugin_release_compose_installs() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    pinned = compose["services"]["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    assert pinned == f"{PLUGIN}@{PLUGIN_VERSION}", (
        f"docker-compose.yml installs {pinned}, the emulator mirrors {PLUGIN}@{PLUGIN_VERSION}: "
        "port the new release first (docs/dashboards.md, 'When the pin changes')"
    )


def test_no_installed_package_imports_the_test_tools() -> None:
    offenders = []
    for package in sorted(p.parent for p in ROOT.glob("*/__init__.py")):
        if package.name == "tests":
            continue
        for path in package.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                else:
                    continue
                if any(n == "tests" or n.startswith("tests.") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"installed code imports from tests/: {offenders}"


# -- the plugin's macros (plugin 4.11.2, pkg/macros) -------------------------------------------

# TestMacroFromTimeFilter and its siblings, TestMacroDateFilter, ...: from/to at .371
SINGLE = TimeRange(at("2014-11-12T11:45:26.371Z"), at("2015-11-12T11:45:26.371Z"), timedelta(0))
# TestMacroTimeInterval, TestMacroTimeIntervalMs, TestMacroIntervalSeconds: a 20 s interval
INTERVAL_20S = TimeRange(EPOCH, EPOCH, timedelta(seconds=20))
# TestInterpolate: from at .123, to at .456
INTERPOLATE = TimeRange(
    at("2014-11-12T11:45:26.123Z"), at("2015-11-12T11:45:26.456Z"), timedelta(0)
)
# TestTimeToDateTime: time.Unix(1708430068, 0)
UNIX_S = TimeRange(epoch_ms(1708430068000), epoch_ms(1708430068000), timedelta(0))
# TestTimeToDateTime64: time.UnixMilli(1708430068123)
UNIX_MS = TimeRange(epoch_ms(1708430068123), epoch_ms(1708430068123), timedelta(0))

PLUGIN_ROWS = [
    # TestTimeToDateTime: whole seconds since the epoch
    (UNIX_S, "$__fromTime", "toDateTime(1708430068)"),
    # TestTimeToDateTime64: milliseconds since the epoch
    (UNIX_MS, "$__fromTime_ms", "fromUnixTimestamp64Milli(1708430068123)"),
    # TestTimeToDate (through $__dateFilter): the day, in the backend's zone (UTC in the image)
    (SINGLE, "$__dateFilter(d)", "d >= toDate('2014-11-12') AND d <= toDate('2015-11-12')"),
    # TestMacroFromTimeFilter: the milliseconds are dropped
    (SINGLE, "$__fromTime", "toDateTime(1415792726)"),
    # TestMacroToTimeFilter
    (SINGLE, "$__toTime", "toDateTime(1447328726)"),
    # TestMacroFromTimeFilterMs
    (SINGLE, "$__fromTime_ms", "fromUnixTimestamp64Milli(1415792726371)"),
    # TestMacroToTimeFilterMs
    (SINGLE, "$__toTime_ms", "fromUnixTimestamp64Milli(1447328726371)"),
    # TestMacroDateFilter
    (
        SINGLE,
        "$__dateFilter(dateCol)",
        "dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')",
    ),
    # TestMacroDateTimeFilter
    (
        SINGLE,
        "$__dateTimeFilter(dateCol, timeCol)",
        "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
        "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))",
    ),
    # from the source: $__dt is the same function as $__dateTimeFilter
    (
        SINGLE,
        "$__dt(dateCol, timeCol)",
        "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
        "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))",
    ),
    # TestMacroTimeInterval
    (
        INTERVAL_20S,
        "select $__timeInterval(col) from foo",
        "select toStartOfInterval(toDateTime(col), INTERVAL 20 second) from foo",
    ),
    # TestMacroTimeIntervalMs
    (
        INTERVAL_20S,
        "select $__timeInterval_ms(col) from foo",
        "select toStartOfInterval(toDateTime64(col, 3), INTERVAL 20000 millisecond) from foo",
    ),
    # TestMacroIntervalSeconds
    (
        INTERVAL_20S,
        "select toStartOfInterval(col, INTERVAL $__interval_s second) AS time from foo",
        "select toStartOfInterval(col, INTERVAL 20 second) AS time from foo",
    ),
    # from the source: $__interval_s and $__timeInterval never go below one second
    (
        SINGLE,
        "$__interval_s $__timeInterval(c)",
        "1 toStartOfInterval(toDateTime(c), INTERVAL 1 second)",
    ),
    # TestInterpolate "clickhouse timeFilter"
    (
        INTERPOLATE,
        "select * from foo where $__timeFilter(cast(sth as timestamp))",
        "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND "
        "cast(sth as timestamp) <= toDateTime(1447328726)",
    ),
    # TestInterpolate "clickhouse timeFilter with empty spaces": arguments are trimmed
    (
        INTERPOLATE,
        "select * from foo where $__timeFilter(cast(sth as timestamp) )",
        "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND "
        "cast(sth as timestamp) <= toDateTime(1447328726)",
    ),
    # TestInterpolate "clickhouse timeFilter_ms"
    (
        INTERPOLATE,
        "select * from foo where $__timeFilter_ms(cast(sth as timestamp))",
        "select * from foo where cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) "
        "AND cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)",
    ),
    # TestInterpolate "clickhouse timeFilter_ms with empty spaces"
    (
        INTERPOLATE,
        "select * from foo where $__timeFilter_ms(cast(sth as timestamp) )",
        "select * from foo where cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) "
        "AND cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)",
    ),
    # TestInterpolate "clickhouse fromTime and toTime"
    (
        INTERPOLATE,
        "select * from foo where ( date >= $__fromTime and date <= $__toTime ) limit 100",
        "select * from foo where ( date >= toDateTime(1415792726) and "
        "date <= toDateTime(1447328726) ) limit 100",
    ),
    # TestInterpolate "clickhouse fromTime and toTime inside a complex clauses"
    (
        INTERPOLATE,
        "select * from foo where ( date >= $__fromTime ) and ( date <= $__toTime ) limit 100",
        "select * from foo where ( date >= toDateTime(1415792726) ) and "
        "( date <= toDateTime(1447328726) ) limit 100",
    ),
    # TestInterpolate "clickhouse fromTime_ms and toTime_ms"
    (
        INTERPOLATE,
        "select * from foo where ( date >= $__fromTime_ms and date <= $__toTime_ms ) limit 100",
        "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) and "
        "date <= fromUnixTimestamp64Milli(1447328726456) ) limit 100",
    ),
    # TestInterpolate "clickhouse fromTime_ms and toTime_ms inside a complex clauses"
    (
        INTERPOLATE,
        "select * from foo where ( date >= $__fromTime_ms ) and ( date <= $__toTime_ms ) limit 100",
        "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) ) and "
        "( date <= fromUnixTimestamp64Milli(1447328726456) ) limit 100",
    ),
    # from the source (sdk default, not overridden by the plugin): RFC 3339 in UTC, no fraction
    (INTERPOLATE, "$__timeFrom(t)", "t >= '2014-11-12T11:45:26Z'"),
    # from the source (sdk default, not overridden by the plugin)
    (INTERPOLATE, "$__timeTo(t)", "t <= '2015-11-12T11:45:26Z'"),
    # from the source (sdk default): SQL Server's datepart(), finest period first, which
    # ClickHouse refuses; emitted as the plugin emits it, so a panel using it fails here too
    (
        INTERPOLATE,
        "$__timeGroup(t, month)",
        "datepart(month, t),datepart(year, t)",
    ),
    # from the source (sdk default): `minute` falls through every coarser period
    (
        INTERPOLATE,
        "$__timeGroup(t,minute)",
        "datepart(minute, t),datepart(hour, t),datepart(day, t),datepart(month, t),datepart(year, t)",
    ),
    # from the source (sdk default): a period it does not know expands to nothing, no error
    (INTERPOLATE, "GROUP BY $__timeGroup(t, week)", "GROUP BY "),
    # from the source (sdk default): the plugin's query model has no top-level table or column
    (INTERPOLATE, "SELECT $__column FROM $__table", "SELECT  FROM "),
    # from the source (sdk defaults): Grafana replaces these first, but left over they still work
    (INTERVAL_20S, "$__interval $__interval_ms", "20s 20000"),
    # from the source (sqlutil.parseArgs): empty brackets are one empty argument, not none
    (INTERPOLATE, "$__timeFilter()", " >= toDateTime(1415792726) AND  <= toDateTime(1447328726)"),
    # TestGetMacroMatches: a longer name that starts with a macro's name is not that macro
    (INTERPOLATE, "$__timeFilterEpoch(time_column)", "$__timeFilterEpoch(time_column)"),
]


@pytest.mark.parametrize(("time_range", "sql", "expected"), PLUGIN_ROWS)
def test_plugin_macros(time_range: TimeRange, sql: str, expected: str) -> None:
    assert interpolate_macros(sql, time_range) == expected


BAD_COUNT = "unexpected number of arguments"
ERROR_ROWS = [
    # every one-column filter: `expected 1 argument, received N`
    ("$__timeFilter(a, b)", f"{BAD_COUNT}: expected 1 argument, received 2"),
    # no brackets at all is no arguments
    ("$__timeFilter_ms", f"{BAD_COUNT}: expected 1 argument, received 0"),
    # the two-column filter says "arguments"
    ("$__dateTimeFilter(d)", f"{BAD_COUNT}: expected 2 arguments, received 1"),
    # $__dt is the same function
    ("$__dt(d, t, x)", f"{BAD_COUNT}: expected 2 arguments, received 3"),
    # the sdk's $__timeGroup needs two but says one (sic)
    ("$__timeGroup(t)", f"{BAD_COUNT}: expected 1 argument, received 1"),
    # the sdk defaults check too
    ("$__timeFrom(a, b)", f"{BAD_COUNT}: expected 1 argument, received 2"),
    # sqlutil.getMacroMatches
    ("$__timeInterval(at", "failed to parse macro arguments (missing close bracket?)"),
]


@pytest.mark.parametrize(("sql", "message"), ERROR_ROWS)
def test_plugin_macro_errors(sql: str, message: str) -> None:
    with pytest.raises(ExpandError) as caught:
        interpolate_macros(sql, INTERPOLATE)
    assert message in str(caught.value)


# -- the sdk's interpolation (sqlutil.Interpolate), with its own test macros --------------------


def _static(output: str) -> Macro:
    return lambda query, args: output


# sqlutil's test map, merged over the defaults by Interpolate exactly as the plugin's map is
SDK_TEST_MACROS: Mapping[str, Macro] = {
    "foo": _static("baz"),
    "fooBaz": _static("qux"),
    "params": lambda query, args: f"bar_{args[0]}" if args and args[0] else "bar",
    "f": _static("f(1)"),
    "g": _static("g(1)"),
    "num": _static("10000"),
    "multiParams": lambda query, args: "_".join(["bar", *(args or [])]),
    "timeGroup": _static("grouped!"),  # overwrites a default macro
}
# Go's zero time.Time, and the test's 10 minute interval
ZERO = TimeRange(
    datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC), timedelta(minutes=10)
)
ZERO_STAMP = "'0001-01-01T00:00:00Z'"

SDK_ROWS = [
    # macro with incorrect syntax
    ("select * from foo", "select * from foo"),
    # correct macro
    ("select * from $__foo()", "select * from baz"),
    # this macro name's substring is another macro
    ("select $__foo, $__fooBaz from foo", "select baz, qux from foo"),
    # multiple instances of same macro
    ("select '$__foo()' from $__foo()", "select 'baz' from baz"),
    # multiple instances of same macro without space
    ("select * from $__foo()$__foo()", "select * from bazbaz"),
    # macro without parenthesis
    ("select * from $__foo", "select * from baz"),
    # macro without params
    ("select * from $__params()", "select * from bar"),
    # with param
    ("select * from $__params(hello)", "select * from bar_hello"),
    # with short param
    ("select * from $__params(h)", "select * from bar_h"),
    # same macro multiple times with same param
    (
        "select * from $__params(hello) AND $__params(hello)",
        "select * from bar_hello AND bar_hello",
    ),
    # same macro multiple times with same param and additional parentheses
    (
        "(select * from $__params(hello) AND $__params(hello))",
        "(select * from bar_hello AND bar_hello)",
    ),
    # same macro multiple times with different param
    (
        "select * from $__params(hello) AND $__params(world)",
        "select * from bar_hello AND bar_world",
    ),
    # different macros with different params
    (
        "select * from $__params(world) AND $__foo() AND $__params(hello)",
        "select * from bar_world AND baz AND bar_hello",
    ),
    # default interval
    (
        "select * from foo group by bin(time, $__interval)",
        "select * from foo group by bin(time, 10m)",
    ),
    # default interval_ms
    (
        "select count(*) / $__interval_ms * 1000 as qps from foo",
        "select count(*) / 600000 * 1000 as qps from foo",
    ),
    # default timeFilter (the plugin overrides it; this map does not)
    (
        "select * from foo where $__timeFilter(time)",
        f"select * from foo where time >= {ZERO_STAMP} AND time <= {ZERO_STAMP}",
    ),
    # default timeFilter with function
    (
        "select * from foo where $__timeFilter(cast(sth as timestamp))",
        f"select * from foo where cast(sth as timestamp) >= {ZERO_STAMP} AND "
        f"cast(sth as timestamp) <= {ZERO_STAMP}",
    ),
    # default timeFilter with empty spaces
    (
        "select * from foo where $__timeFilter(cast(sth as timestamp) )",
        f"select * from foo where cast(sth as timestamp) >= {ZERO_STAMP} AND "
        f"cast(sth as timestamp) <= {ZERO_STAMP}",
    ),
    # default timeTo macro
    ("select * from foo where $__timeTo(time)", f"select * from foo where time <= {ZERO_STAMP}"),
    # default timeFrom macro
    ("select * from foo where $__timeFrom(time)", f"select * from foo where time >= {ZERO_STAMP}"),
    # default timeFrom macro with function
    (
        "select * from foo where $__timeFrom(cast(sth as timestamp))",
        f"select * from foo where cast(sth as timestamp) >= {ZERO_STAMP}",
    ),
    # overridden timeGroup macro
    ("select * from foo where $__timeGroup(time,minute)", "select * from foo where grouped!"),
    # table and column macros
    ("select $__column from $__table", "select my_col from my_table"),
    # macro functions inside more complex clauses
    (
        "select * from table where ( datetime >= $__foo() ) AND ( datetime <= $__foo() ) limit 100",
        "select * from table where ( datetime >= baz ) AND ( datetime <= baz ) limit 100",
    ),
    # macros inside more complex clauses
    (
        "select * from table where ( datetime >= $__foo ) AND ( datetime <= $__foo ) limit 100",
        "select * from table where ( datetime >= baz ) AND ( datetime <= baz ) limit 100",
    ),
    # macro with multiple parameters
    ("select * from foo where $__multiParams(foo, bar)", "select * from foo where bar_foo_bar"),
    # function in macro with multiple parameters
    (
        "select * from foo where $__params(FUNC(foo, bar))",
        "select * from foo where bar_FUNC(foo, bar)",
    ),
    # don't consume args after a space (grafana/sqlds#82)
    ("select * from foo where $__f > $__g", "select * from foo where f(1) > g(1)"),
    # don't consume args after other non-paren characters
    (
        "select * from foo where $__num*(table.a + table.b) > 1000000",
        "select * from foo where 10000*(table.a + table.b) > 1000000",
    ),
]


@pytest.mark.parametrize(("sql", "expected"), SDK_ROWS)
def test_sdk_interpolate(sql: str, expected: str) -> None:
    out = interpolate_macros(sql, ZERO, SDK_TEST_MACROS, table="my_table", column="my_col")
    assert out == expected


@pytest.mark.parametrize(
    "sql",
    [
        # error (not panic) on missing close bracket
        "select * from foo where $__params(whoops",
        # error on missing close bracket, nested
        "select * from foo where $__params(FUNC(foo, bar)",
        # error on missing close bracket after good macros
        "select * from foo where $__params(FUNC(foo, bar)) > $__timeTo(uhoh",
    ],
)
def test_sdk_interpolate_errors(sql: str) -> None:
    with pytest.raises(ExpandError, match="missing close bracket"):
        interpolate_macros(sql, ZERO, SDK_TEST_MACROS)


@pytest.mark.parametrize(
    ("text", "args", "length"),
    [
        # no parens, no args
        ("foo bar", None, 0),
        # parens not at beginning, still no args
        ("foo(bar)", None, 0),
        # even just a space is enough
        (" (bar)", None, 0),
        # simple one-arg case
        ("(bar)", ["bar"], 5),
        # multiple args, spaces
        ("(bar, baz, quux)", ["bar", "baz", "quux"], 16),
        # nested parens are not parsed further
        ("(bar(some,thing))", ["bar(some,thing)"], 17),
        # stuff after the closing bracket is ignored
        ("(arg1, arg2), not_an_arg, nope", ["arg1", "arg2"], 12),
        # missing close bracket is an error
        ("(arg1, arg2", None, -1),
    ],
)
def test_sdk_parse_args(text: str, args: list[str] | None, length: int) -> None:
    assert parse_args(text) == (args, length)


# -- $__conditionalAll (plugin 4.11.2, src/data/CHDatasource.ts) -------------------------------

SOME = Variable("fieldVal", "'val1', 'val2'")
EVERY = Variable("fieldVal", ALL)
ROW_SQL = "select stuff from table where $__conditionalAll(fieldVal in ($fieldVal), $fieldVal);"


@pytest.mark.parametrize(
    ("sql", "variables", "expected"),
    [
        # "should handle $__conditionalAll and not replace"
        ("$__conditionalAll(foo, $fieldVal)", [SOME], "foo"),
        # "should handle $__conditionalAll and replace"
        ("$__conditionalAll(foo, $fieldVal)", [EVERY], "1=1"),
        # "should replace $__conditionalAll with 1=1 when all is selected"
        (ROW_SQL, [EVERY], "select stuff from table where 1=1;"),
        # "should replace $__conditionalAll with arg when anything else is selected"
        (ROW_SQL, [SOME], "select stuff from table where fieldVal in ($fieldVal);"),
        # "should replace all $__conditionalAll"
        (
            "select stuff from table where $__conditionalAll(fieldVal in ($fieldVal), $fieldVal)"
            " and $__conditionalAll(fieldVal in ($fieldVal2), $fieldVal2);",
            [SOME, Variable("fieldVal2", ALL)],
            "select stuff from table where fieldVal in ($fieldVal) and 1=1;",
        ),
        # from the source: a multi-value variable's All is ['$__all'], whose toString is '$__all'
        ("$__conditionalAll(x, ${fieldVal})", [Variable("fieldVal", [ALL])], "1=1"),
        # from the source: an empty selection counts as All
        ("$__conditionalAll(x, $fieldVal)", [Variable("fieldVal", [])], "1=1"),
        # from the source: an unknown variable keeps the condition
        ("$__conditionalAll(x, $nothing)", [EVERY], "x"),
        # from the source: right to left; at a call without exactly two arguments it stops there
        (
            "$__conditionalAll(x) AND $__conditionalAll(y, $fieldVal)",
            [EVERY],
            "$__conditionalAll(x) AND 1=1",
        ),
    ],
)
def test_conditional_all(sql: str, variables: list[Variable], expected: str) -> None:
    assert apply_conditional_all(sql, {v.name: v for v in variables}) == expected


def test_a_time_range_must_be_timezone_aware() -> None:
    # a naive datetime would be read in this machine's zone; Grafana sends epoch milliseconds
    with pytest.raises(ValueError, match="timezone"):
        TimeRange(datetime(2018, 1, 1), datetime(2018, 2, 1))


# -- the whole expansion (moved from tests/integration/test_dashboards.py) -----------------------

RANGE = TimeRange(
    datetime.fromtimestamp(1415792726.123, UTC),
    datetime.fromtimestamp(1447328726.456, UTC),
    timedelta(seconds=20),
)


def test_macros_expand_like_the_plugin() -> None:
    assert interpolate_macros("WHERE $__timeFilter(time)", RANGE) == (
        "WHERE time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)"
    )
    assert interpolate_macros("$__timeFilter_ms(t)", RANGE) == (
        "t >= fromUnixTimestamp64Milli(1415792726123) AND t <= fromUnixTimestamp64Milli(1447328726456)"
    )
    assert interpolate_macros("$__fromTime, $__toTime", RANGE) == (
        "toDateTime(1415792726), toDateTime(1447328726)"
    )
    assert interpolate_macros("$__timeInterval(toDate(x)) $__interval_s", RANGE) == (
        "toStartOfInterval(toDateTime(toDate(x)), INTERVAL 20 second) 20"
    )
    assert interpolate_macros("$__dateFilter(d)", RANGE) == (
        "d >= toDate('2014-11-12') AND d <= toDate('2015-11-12')"
    )
    with pytest.raises(ExpandError, match="expected 1 argument"):
        interpolate_macros("$__timeFilter(a, b)", RANGE)


def test_variables_and_conditional_all_like_grafana() -> None:
    tier = Variable("tier", [ALL], ("city-gov", "county-gov"))
    units = Variable("unit", ["fj.gat", "o'brien"])
    year = Variable("year", "2018")
    variables = {"tier": tier, "unit": units, "year": year}
    sql = "$__conditionalAll(tier IN (${tier:singlequote}), $tier)"
    assert apply_conditional_all(sql, variables) == "1=1"
    sql = "$__conditionalAll(unit IN (${unit:singlequote}), $unit) AND year = $year"
    assert expand(sql, variables, RANGE) == r"unit IN ('fj.gat','o\'brien') AND year = 2018"
    # the plugin's default formatter quotes lists and leaves single values raw
    assert replace_variables("$unit / [[year]] / ${year:csv}", variables) == (
        "'fj.gat','o'brien' / 2018 / 2018"
    )
    # All without a custom all-value expands to every option
    assert replace_variables("${tier:singlequote}", variables) == "'city-gov','county-gov'"
    # upstream quirk: a formatted variable as the second argument is not recognised
    assert apply_conditional_all("$__conditionalAll(x, ${tier:singlequote})", variables) == "x"
    # unknown names are left for the macros
    assert replace_variables("$__timeFilter(at) $nothing", variables, RANGE) == (
        "$__timeFilter(at) $nothing"
    )
    with pytest.raises(ExpandError, match="unknown variable format"):
        replace_variables("${unit:bogus}", variables)
