#!/bin/bash
# First start of the ClickHouse container only (the entrypoint runs /docker-entrypoint-initdb.d
# while the data directory is empty): the read-all roles of docs/access.md and a read-only user
# for Grafana's provisioned data source, so Grafana never holds the writer's password.
#
# Nothing from .env can add to or change the SQL below: the names must be plain identifiers, and
# of GRAFANA_CH_PASSWORD only its SHA-256 (64 hex digits) reaches SQL (`sha256_hash`), so a quote,
# backslash or semicolon in it is just part of the password.
set -euo pipefail

fail() {
  echo "10-grafana-reader.sh: $*" >&2
  exit 1
}

for name in CLICKHOUSE_DB GRAFANA_CH_USER; do
  [[ ${!name-} =~ ^[A-Za-z_][A-Za-z0-9_]{0,63}$ ]] ||
    fail "$name must be letters, digits and _ (not starting with a digit)"
done
[[ -n ${GRAFANA_CH_PASSWORD-} ]] || fail "GRAFANA_CH_PASSWORD is empty"
password_sha256=$(printf '%s' "$GRAFANA_CH_PASSWORD" | sha256sum | cut -d ' ' -f 1)
[[ $password_sha256 =~ ^[0-9a-f]{64}$ ]] || fail "could not hash GRAFANA_CH_PASSWORD (sha256sum)"

clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE ROLE IF NOT EXISTS centre_reader;
GRANT SELECT ON ${CLICKHOUSE_DB}.* TO centre_reader;
CREATE ROLE IF NOT EXISTS auditor;
GRANT SELECT ON ${CLICKHOUSE_DB}.* TO auditor;
CREATE USER IF NOT EXISTS ${GRAFANA_CH_USER}
    IDENTIFIED WITH sha256_hash BY '${password_sha256}'
    SETTINGS readonly = 1, max_execution_time CHANGEABLE_IN_READONLY;
GRANT centre_reader TO ${GRAFANA_CH_USER};
SET DEFAULT ROLE centre_reader TO ${GRAFANA_CH_USER};
SQL
