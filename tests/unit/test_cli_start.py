"""What every CLI command pays at start: modules only some commands need are not imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ONLY_WHEN_USED = [
    "grafana_client",  # tracker grafana-users / dashboards push
    "niquests",  # the Grafana client's HTTP library
    "jinja2",  # tracker report
    "cryptography",  # tracker audit (the signature library; writers load it when they sign)
]


@pytest.fixture(scope="module")
def loaded() -> set[str]:
    """The top-level modules a fresh interpreter holds after importing the CLI."""
    probe = "import json, sys, tracker.cli; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize("module", ONLY_WHEN_USED)
def test_starting_the_cli_does_not_import(module: str, loaded: set[str]) -> None:
    assert module not in loaded


# -- `tracker status`: the read path imports what it reads with ---------------------------------

# what `tracker status` on a ClickHouse store runs without: Typer (a plain command line is read
# without it), the contract models and pydantic, the engine, the config loaders and settings,
# the full store and the other commands' modules, and on an embedded store the driver (chDB's
# own API reads it: sinks/rows.py) (tests/integration/test_status_fast.py runs the command itself and checks
# the same list)
NOT_FOR_STATUS = [
    "pydantic",
    "pydantic_settings",
    "schemas",
    "engine",
    "config.settings",
    "config.registry",
    "config.rulebooks",
    "sinks.base",
    "sinks.clickhouse",
    "sinks.memory",
    "sinks.remote",
    "tracker.ingest",
    "tracker.kafka_cli",
    "tracker.stream_cli",
    "tracker.serve_cli",
    "typer",
    "tracker.cli_app",
    "tracker.commands",
    "tracker.options",
    "clickhouse_connect",
    "urllib3",
]


@pytest.fixture(scope="module")
def status_loaded() -> set[str]:
    """The modules a fresh interpreter holds once `tracker status` has parsed its command line
    and imported the status read (no store is opened)."""
    probe = (
        "import json, sys\n"
        "from tracker.cli import status_options\n"
        "import tracker.status_cmd, sinks.clickhouse_status\n"
        "assert status_options(['status', '--store', 'chdb:///x', '--json', '--as-of',"
        " '2020-06-30T00:00:00+08:00', '--unit', 'fj.nd', '--year', '2020'])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize("module", NOT_FOR_STATUS)
def test_status_does_not_import(module: str, status_loaded: set[str]) -> None:
    assert module not in status_loaded


AS_OF = "2020-06-30T00:00:00+08:00"
PLAIN_LINES = [
    [],  # every unit, latest, a table
    ["--json"],
    ["--store", "chdb:///data?database=x", "--unit", "fj.nd", "--json", "--as-of", AS_OF],
    ["--store=chdb:///data", "--unit=fj.nd", "--year=2018", f"--as-of={AS_OF}"],
    ["--year", "0042"],  # leading zeros: the number
    ["--unit", "福建省", "--json"],  # any text is a unit id
]
TYPERS_LINES = [  # the plain reading declines these: Typer answers (parses, or says what is wrong)
    ["--help"],
    ["-h"],
    ["--json", "--json"],  # repeated
    ["--unit", "a", "--unit", "b"],  # repeated: Click keeps the last
    ["--unit", "-x"],  # a value like an option
    ["--unit="],  # empty
    ["--unit"],  # no value
    ["--year", "2018.5"],  # not a whole number
    ["--year", "-1"],
    ["--year", " 2018"],
    ["--as-of", "2020-06-30T00:00:00"],  # no offset: a usage error
    ["--as-of", "yesterday"],
    ["--as-of", "2020-06-30T00:00:00.0001+08:00"],  # finer than the store keeps
    ["--json=true"],
    ["--bogus"],
    ["extra"],  # an argument
    ["--", "--json"],
    ["--store"],
]


def _typers(line: list[str]) -> dict[str, object] | None:
    """What Typer passes `cmd_status` for `status LINE`; None for a usage error or help."""
    import typer
    from typer._click.exceptions import ClickException

    from tracker import cli_app

    command = typer.main.get_command(cli_app._read_commands(cli_app._new_app()))
    status = command.get_command(None, "status")  # type: ignore[attr-defined]
    try:
        return dict(status.make_context("status", list(line)).params)
    except (ClickException, typer.Exit):
        return None


@pytest.mark.parametrize("line", PLAIN_LINES, ids=[" ".join(x) or "(none)" for x in PLAIN_LINES])
def test_plain_status_lines_are_read_as_typer_reads_them(line: list[str]) -> None:
    from tracker.cli import status_options

    plain = status_options(["status", *line])
    assert plain is not None
    assert plain == _typers(line)


@pytest.mark.parametrize("line", TYPERS_LINES, ids=[" ".join(x) for x in TYPERS_LINES])
def test_other_status_lines_are_left_to_typer(line: list[str]) -> None:
    from tracker.cli import status_options

    assert status_options(["status", *line]) is None


def test_other_commands_are_typers() -> None:
    from tracker.cli import status_options

    assert status_options(["ledger", "--json"]) is None
    assert status_options(["--version"]) is None
    assert status_options([]) is None


# -- `tracker ingest`: its writer process started beside the CLI's own start --------------------

WRITER_GUESSES = [
    # the defaults: an embedded store under ./.data, the writer process
    (["ingest", "x.jsonl"], {}, True),
    # an embedded store given either way
    (["ingest", "--store", "chdb:///tmp/s", "x.jsonl"], {}, True),
    (["ingest", "--store=chdb:///tmp/s", "x.jsonl"], {}, True),
    # a server store: the driver runs in the CLI
    (["ingest", "--store", "http://u:p@h:8123/", "x.jsonl"], {}, False),
    (["ingest", "x.jsonl"], {"TRACKER_STORE": "https://h:8443/"}, False),
    # the option beats the environment, as Typer reads them
    (["ingest", "--store", "chdb:///s", "x"], {"TRACKER_STORE": "http://h:8123/"}, True),
    # inline asked for either way
    (["ingest", "--writer", "inline", "x.jsonl"], {}, False),
    (["ingest", "--writer=inline", "x.jsonl"], {}, False),
    (["ingest", "x.jsonl"], {"TRACKER_WRITER": "inline"}, False),
    (["ingest", "--writer", "process", "x"], {"TRACKER_WRITER": "inline"}, True),
    # an option with its value missing: Typer says so; no guess is wrong enough to matter
    (["ingest", "--writer"], {}, True),
    # other commands never
    (["status"], {}, False),
    (["worker", "--store", "chdb:///s"], {}, False),
    ([], {}, False),
]


@pytest.mark.parametrize(("args", "env", "likely"), WRITER_GUESSES)
def test_an_ingest_that_starts_its_writer_process_is_told_before_typer_parses_it(
    args: list[str], env: dict[str, str], likely: bool
) -> None:
    from tracker.cli import ingest_writer_likely

    assert ingest_writer_likely(args, env) is likely


# -- `tracker ingest`: its process ends without the interpreter's teardown ----------------------

_ENDING = """
import atexit, sys
from tracker.cli import end_process
atexit.register(lambda: print("the exit handler ran", file=sys.stderr))
print("not flushed yet", end="")  # a pipe: buffered until flushed
end_process(3)
"""


def test_a_process_ended_without_teardown_runs_its_exit_handlers_and_flushes() -> None:
    ended = subprocess.run([sys.executable, "-c", _ENDING], capture_output=True, text=True)
    assert (ended.returncode, ended.stdout) == (3, "not flushed yet")
    assert ended.stderr == "the exit handler ran\n"


def test_holding_a_value_is_for_an_ingest_process_only() -> None:
    from tracker import cli

    assert cli._held is None  # main() was not run with the process's own argv here
    cli.hold(object())  # and so nothing is kept
    assert cli._held is None


# -- `tracker ingest`: its process runs without the cyclic collector -----------------------------

_COLLECTOR = """
import atexit, gc, sys
from tracker.cli import main
atexit.register(lambda: print("collector on" if gc.isenabled() else "collector off"))
sys.argv = ["tracker", *sys.argv[1:]]
sys.exit(main())
"""


@pytest.mark.parametrize(
    ("args", "said"),
    [
        # an ingest process: its state only grows, and it makes no cyclic garbage (measured by
        # tests/integration/test_ingest_garbage.py), so the collector's passes free nothing
        (["ingest", "--help"], "collector off"),
        # every other command keeps it: a worker or a server runs for days
        (["worker", "--help"], "collector on"),
        (["--version"], "collector on"),
    ],
)
def test_an_ingest_process_runs_without_the_cyclic_collector(args: list[str], said: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _COLLECTOR, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == said


# -- `tracker ingest`: the other commands' modules are not imported -----------------------------

# the command modules `tracker ingest` runs without (building the whole command tree imported
# and registered them all: ~0.06-0.1 s of every ingest, a tenth of a small file's run)
NOT_FOR_INGEST = [
    "tracker.audit_cli",
    "tracker.commands",
    "tracker.demo_cli",
    "tracker.kafka_cli",
    "tracker.ops_cli",
    "tracker.post_cli",
    "tracker.report",
    "tracker.serve_cli",
    "tracker.stream_cli",
]

_INGEST_MODULES = """
import json, sys
from tracker.cli_app import run
code = run(["ingest", "--help"])
print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def ingest_loaded() -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _INGEST_MODULES], capture_output=True, text=True, check=True
    )
    code, modules = json.loads(done.stderr.strip().splitlines()[-1])
    assert code == 0 and "Apply a JSONL file" in done.stdout  # its help, as before
    return set(modules)


@pytest.mark.parametrize("module", NOT_FOR_INGEST)
def test_ingest_does_not_import_the_other_commands(module: str, ingest_loaded: set[str]) -> None:
    assert module not in ingest_loaded
