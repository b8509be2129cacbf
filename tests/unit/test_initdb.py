"""docker/clickhouse/initdb/10-grafana-reader.sh: the Grafana password from .env never becomes
SQL (issue 7 item 14). The script runs for real with a stand-in `clickhouse` client that keeps
the SQL it is fed; ClickHouse's own parser (formatQuery, on chDB) then reads that SQL."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from sinks.clickhouse import connect

SCRIPT = Path(__file__).resolve().parents[2] / "docker/clickhouse/initdb/10-grafana-reader.sh"
EXPECTED = [  # statement kinds, in order: nothing more, nothing less
    "CREATE ROLE",
    "GRANT",
    "CREATE ROLE",
    "GRANT",
    "CREATE USER",
    "GRANT",
    "SET DEFAULT ROLE",
]


def run_script(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], str | None]:
    """Run the script with `clickhouse` replaced by a recorder; (the run, the SQL it got)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    sql = tmp_path / "fed.sql"
    fake = bin_dir / "clickhouse"
    fake.write_text(f'#!/bin/sh\ncat > "{sql}"\n')
    fake.chmod(0o755)
    environ = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CLICKHOUSE_USER": "tracker",
        "CLICKHOUSE_PASSWORD": "writer-pw",
        "CLICKHOUSE_DB": "tracker",
        "GRAFANA_CH_USER": "grafana",
        **env,
    }
    done = subprocess.run(["bash", str(SCRIPT)], env=environ, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    return done, sql.read_text(encoding="utf-8") if sql.exists() else None


def split_statements(sql: str) -> list[str]:
    """Statements as ClickHouse's lexer sees them: `;` ends one, except inside a quoted string
    ('...' with \\ escapes and '' doubling) or a -- comment."""
    out, current, i, quote = [], [], 0, ""
    while i < len(sql):
        ch = sql[i]
        if quote:
            current.append(ch)
            if ch == "\\":
                current.append(sql[i + 1 : i + 2])
                i += 1
            elif ch == quote and sql[i + 1 : i + 2] == quote:
                current.append(quote)
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
            current.append(ch)
        elif sql.startswith("--", i):
            i = sql.find("\n", i) if "\n" in sql[i:] else len(sql)
            continue
        elif ch == ";":
            out.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current).strip())
    return [s for s in out if s]


@pytest.mark.parametrize(
    "password",
    [
        "plain-Pw_1",
        "it's",  # a quote
        "x'; DROP USER tracker; --",  # a quote, then statements of its own
        "back\\slash\\",  # a backslash escapes the closing quote
        "semi;colon",
        "$(touch /tmp/owned)`id`",  # shell substitutions stay text
        "两个字 and ' \\' \" ` \n newline",
    ],
)
def test_hostile_password_stays_a_password(tmp_path: Path, chdb_dsn: str, password: str) -> None:
    done, sql = run_script(tmp_path, GRAFANA_CH_PASSWORD=password)
    assert done.returncode == 0, done.stderr
    assert sql is not None
    statements = split_statements(sql)
    known = ("CREATE ROLE", "GRANT", "CREATE USER", "SET DEFAULT ROLE")
    kinds = [next((k for k in known if s.upper().startswith(k)), s) for s in statements]
    assert kinds == EXPECTED, statements
    client = connect(chdb_dsn)
    try:
        for statement in statements:  # ClickHouse's parser accepts each one
            client.query("SELECT formatQuery({q:String})", parameters={"q": statement})
    finally:
        client.close()
    create_user = statements[4]
    digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
    assert re.search(rf"IDENTIFIED WITH sha256_hash BY '{digest}'", create_user), create_user
    assert password not in sql  # the password itself is never in the SQL
    assert not Path("/tmp/owned").exists()


@pytest.mark.parametrize(
    "env",
    [
        {"GRAFANA_CH_USER": "grafana; DROP USER tracker"},
        {"GRAFANA_CH_USER": "graf`ana"},
        {"GRAFANA_CH_USER": ""},
        {"CLICKHOUSE_DB": "tracker.x"},
        {"GRAFANA_CH_PASSWORD": ""},  # no password: refused, not an open account
    ],
)
def test_bad_names_are_refused_before_any_sql(tmp_path: Path, env: dict[str, str]) -> None:
    done, sql = run_script(tmp_path, **{"GRAFANA_CH_PASSWORD": "pw", **env})
    assert done.returncode != 0 and sql is None
    assert "10-grafana-reader" in done.stderr
