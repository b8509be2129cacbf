#!/bin/bash
# First start of the ClickHouse container only (the entrypoint runs /docker-entrypoint-initdb.d
# while the data directory is empty): the read-all roles of docs/access.md and a read-only user
# for Grafana's provisioned data source, so Grafana never holds the writer's password.
set -euo pipefail

clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE ROLE IF NOT EXISTS centre_reader;
GRANT SELECT ON ${CLICKHOUSE_DB}.* TO centre_reader;
CREATE ROLE IF NOT EXISTS auditor;
GRANT SELECT ON ${CLICKHOUSE_DB}.* TO auditor;
CREATE USER IF NOT EXISTS ${GRAFANA_CH_USER}
    IDENTIFIED WITH sha256_password BY '${GRAFANA_CH_PASSWORD}'
    SETTINGS readonly = 1, max_execution_time CHANGEABLE_IN_READONLY;
GRANT centre_reader TO ${GRAFANA_CH_USER};
SET DEFAULT ROLE centre_reader TO ${GRAFANA_CH_USER};
SQL
