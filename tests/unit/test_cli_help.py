"""`tracker` as a conventional CLI: grouped commands, help on every option and argument, one
default for each shared option (tracker/cli.py, config/settings.py), flags checked before any
network call. In-process through `main(argv)`, no services."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from config.rulebooks import RULEBOOK_DIR
from tracker import cli
from tracker.cli import main

UNITS_YAML = "assessments: []\nunits:\n  - {id: fj.gat, name: x, tier: provincial-dept}\n"
# an address nothing answers on: a connection attempt would take its full timeout
UNREACHABLE = "10.255.255.1:9092"

COMMANDS = {
    "ingest",
    "status",
    "ledger",
    "deadlines",
    "rejects",
    "rulebooks list",
    "rulebooks show",
    "generate",
    "demo",
    "dashboards push",
    "access",
    "kafka start",
    "kafka stop",
    "kafka status",
    "post",
    "worker",
    "ticker",
    "replay",
    "report",
    "audit verify",
    "audit export",
    "serve",
    "principals add",
    "principals list",
    "principals revoke",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TRACKER_UNITS", "TRACKER_RULEBOOKS", "TRACKER_STORE", "TRACKER_KAFKA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRACKER_DATA", str(tmp_path / "data"))


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


def _leaves() -> dict[str, Any]:
    root = typer.main.get_command(cli.app)
    return {
        " ".join(path): command
        for path, command in _walk(root)
        if path and not getattr(command, "commands", None)
    }


def test_the_command_tree() -> None:
    assert set(_leaves()) == COMMANDS


def test_help_groups_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for panel in (
        "Ingest and read",
        "Live (Kafka)",
        "Serve (HTTP)",
        "Dashboards and access",
        "Audit",
        "Demo",
    ):
        assert panel in out, panel
    for name in {c.split()[0] for c in COMMANDS}:
        assert name in out, name


def test_every_command_option_and_argument_has_help() -> None:
    missing = []
    for path, command in _walk(typer.main.get_command(cli.app)):
        where = " ".join(("tracker", *path))
        if not (command.help or command.short_help):
            missing.append(where)
        for param in command.params:
            if getattr(param, "hidden", False) or param.name == "help":
                continue
            if not getattr(param, "help", None):
                missing.append(f"{where} {param.opts[0]}")
            elif (
                getattr(param, "is_flag", False)
                or param.param_type_name == "argument"
                or param.required
            ):
                continue
            # a value option says what it defaults to, also when that is "nothing given"
            elif param.default is None and not isinstance(param.show_default, str):
                missing.append(f"{where} {param.opts[0]}: no default shown")
            elif param.show_default is False:
                missing.append(f"{where} {param.opts[0]}: default hidden")
    assert missing == []


def test_the_grafana_token_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_very_secret")
    assert main(["dashboards", "push", "--help"]) == 0
    assert "glsa_very_secret" not in capsys.readouterr().out


def _units_commands(tmp_path: Path) -> dict[str, list[str]]:
    events = tmp_path / "events.jsonl"
    events.write_text("", encoding="utf-8")
    return {
        "ingest": ["ingest", str(events)],
        "post": ["post", "--direct", "--type", "clock.tick", "--bootstrap", UNREACHABLE],
        "worker": ["worker", "--bootstrap", UNREACHABLE],
        "replay": ["replay", "--from-kafka", "--bootstrap", UNREACHABLE],
        "access": ["access", "--out", str(tmp_path / "out")],
        "serve": ["serve", "--store", "memory://"],
    }


# --units is optional there: it only checks that a principal's scope names a known unit.
OPTIONAL_UNITS = {"principals add"}


def test_every_command_taking_units_is_checked_below(tmp_path: Path) -> None:
    taking = {
        name
        for name, command in _leaves().items()
        if any("--units" in p.opts for p in command.params)
    }
    assert taking - OPTIONAL_UNITS == set(_units_commands(tmp_path))


@pytest.mark.parametrize("command", ["ingest", "post", "worker", "replay", "access", "serve"])
def test_units_falls_back_to_the_environment(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = _units_commands(tmp_path)[command]
    # neither --units nor $TRACKER_UNITS: one clear line, before anything else happens
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--units" in err and "TRACKER_UNITS" in err, err
    # $TRACKER_UNITS names the registry: the command reads that file
    monkeypatch.setenv("TRACKER_UNITS", str(tmp_path / "from-env.yaml"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "from-env.yaml" in err and len(err.splitlines()) == 1, err


def _one_book(tmp_path: Path) -> Path:
    folder = tmp_path / "books"
    folder.mkdir()
    shutil.copy(RULEBOOK_DIR / "fj-2018-city-gov.yaml", folder)
    return folder


@pytest.mark.parametrize(
    "argv",
    [
        ["rulebooks", "--rulebooks", "{dir}", "list"],  # the name every other command uses
        ["rulebooks", "list", "--rulebooks", "{dir}"],  # after the action too
        ["rulebooks", "--dir", "{dir}", "list"],  # the old name keeps working
    ],
)
def test_rulebooks_folder_option(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _one_book(tmp_path)
    assert main([a.replace("{dir}", str(folder)) for a in argv]) == 0
    out = capsys.readouterr().out
    assert "fj-2018-city-gov" in out and "fj-2018-provincial-dept" not in out


def test_rulebooks_folder_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRACKER_RULEBOOKS", str(_one_book(tmp_path)))
    assert main(["rulebooks", "list"]) == 0
    out = capsys.readouterr().out
    assert "fj-2018-city-gov" in out and "fj-2018-provincial-dept" not in out


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        # an event the contract rejects is reported; no broker is contacted for it
        (["--type", "vuln.notice", "--unit", "fj.gat"], 1, "schema violation"),
        (["--type", "mlps.finding", "--unit", "nope", "--system", "s"], 1, "unknown unit"),
        # flags the network part would only trip over later
        (["--type", "clock.tick", "--partitions", "0"], 2, "--partitions"),
        (["--type", "clock.tick", "--topic-prefix", "bad/prefix"], 2, "--topic-prefix"),
        (["--type", "clock.tick", "--timeout", "0"], 2, "--timeout"),
        (["--type", "clock.tick", "--bootstrap", "no-port"], 2, "--bootstrap"),
        (["--type", "clock.tick", "--bootstrap", "host:99999"], 2, "--bootstrap"),
    ],
)
def test_post_checks_everything_before_the_network(
    flags: list[str],
    code: int,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    units = tmp_path / "units.yaml"
    units.write_text(UNITS_YAML, encoding="utf-8")
    if "--bootstrap" not in flags:
        flags = [*flags, "--bootstrap", UNREACHABLE]
    started = time.monotonic()
    assert main(["post", "--direct", "--units", str(units), *flags]) == code
    assert time.monotonic() - started < 5  # no connection attempt (that takes ~15 s)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--no-such-flag"],
        ["status", "--year", "nineteen"],
        ["kafka", "restart"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "tracker: error:" in err


def test_dashboards_push_checks_the_url_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = "http://reader:pw@clickhouse:8123/?database=tracker"
    argv = ["dashboards", "push", "--url", "grafana.example:3000", "--token", "t"]
    assert main([*argv, "--datasource-url", dsn]) == 2
    err = capsys.readouterr().err
    assert "--url" in err and "http" in err and len(err.strip().splitlines()) == 1, err
