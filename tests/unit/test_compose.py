"""docker-compose.yml, the Dockerfile and the Grafana provisioning files hang together.

No Docker engine is needed: the file is read as YAML and checked against the repository;
`docker compose config` runs too when a compose client is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tracker import dashboard_json

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
IMAGES = {
    "kafka": "apache/kafka:4.1.0",
    "clickhouse": "clickhouse/clickhouse-server:25.8",
    "grafana": "grafana/grafana:12.2.0",
}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _binds(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the bind mounts (short syntax, host path starting with .)."""
    out = []
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("."):
            out.append((host, container))
    return out


def test_services_images_and_commands() -> None:
    services = _services()
    assert set(services) == {*IMAGES, "kafka-acls", "serve", "tracker-worker", "tracker-ticker"}
    for name, image in IMAGES.items():
        assert services[name]["image"] == image
    for name, command in (("tracker-worker", "worker"), ("tracker-ticker", "ticker")):
        service = services[name]
        assert service["build"] == "." and service["command"] == ["tracker", command]
        env = service["environment"]
        assert env["TRACKER_KAFKA"] == "kafka:9092"
        assert re.fullmatch(
            r"http://\$\{CLICKHOUSE_USER[^}]*\}:\$\{CLICKHOUSE_PASSWORD[^}]*\}@clickhouse:8123/\?database=tracker",
            env["TRACKER_STORE"],
        )
    # a pinned plugin version, installed before Grafana serves (no unpinned GF_INSTALL_PLUGINS)
    grafana_env = services["grafana"]["environment"]
    assert "GF_INSTALL_PLUGINS" not in grafana_env
    assert re.fullmatch(
        r"grafana-clickhouse-datasource@\d+\.\d+\.\d+", grafana_env["GF_PLUGINS_PREINSTALL_SYNC"]
    )
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("# ") and "FROM python:3.11-slim" in dockerfile
    # dependencies from the lock, in a layer before the source is copied
    lock_install = dockerfile.index("RUN pip install --require-hashes -r requirements.lock")
    assert dockerfile.index("COPY pyproject.toml requirements.lock ./") < lock_install
    assert lock_install < dockerfile.index("COPY . .")
    assert re.search(r"^RUN pip install --no-deps \.", dockerfile, re.M)


def _one_shot(service: dict[str, Any]) -> bool:
    """A setup step that runs once and exits (no healthcheck: it is done, not healthy)."""
    return service.get("restart") == "no"


def test_every_service_has_an_image_a_healthcheck_and_healthy_dependencies() -> None:
    services = _services()
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        test = service.get("healthcheck", {}).get("test")
        assert _one_shot(service) or (test and test[0] in ("CMD", "CMD-SHELL")), (
            f"{name} has no healthcheck"
        )
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            wanted = (
                "service_completed_successfully"
                if _one_shot(services[dependency])
                else ("service_healthy")
            )
            assert rule == {"condition": wanted}, f"{name} -> {dependency}"
    for name in ("tracker-worker", "tracker-ticker", "grafana"):
        assert services[name].get("depends_on"), f"{name} must wait for its dependencies"
    assert "kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(services["grafana"]["healthcheck"]["test"])


def test_ports_are_local_and_volumes_named() -> None:
    data = _compose()
    declared = set(data["volumes"])
    for name, service in data["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            assert host.startswith(".") or host in declared, f"{name}: undeclared volume {host}"
    assert {"kafka-data", "clickhouse-data", "grafana-data"} <= declared


def test_mounted_and_provisioned_paths_exist() -> None:
    services = _services()
    for name, service in services.items():
        for host, _ in _binds(service):
            assert (ROOT / host).exists(), f"{name} mounts missing {host}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()
    grafana = dict((container, host) for host, container in _binds(services["grafana"]))
    datasources = ROOT / grafana["/etc/grafana/provisioning/datasources"]
    provider_dir = ROOT / grafana["/etc/grafana/provisioning/dashboards"]
    (source,) = yaml.safe_load((datasources / "clickhouse.yaml").read_text("utf-8"))["datasources"]
    assert source["uid"] == dashboard_json.DATASOURCE_UID
    assert source["type"] == dashboard_json.DATASOURCE_TYPE
    assert source["jsonData"]["host"] == "clickhouse" and source["jsonData"]["port"] == 8123
    (provider,) = yaml.safe_load((provider_dir / "tracker.yaml").read_text("utf-8"))["providers"]
    assert provider["type"] == "file"
    json_dir = ROOT / grafana[provider["options"]["path"]]
    for file in dashboard_json.FILES.values():
        assert (json_dir / file).is_file()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    folder, _, file = home.rpartition("/")
    assert (ROOT / grafana[folder] / file).is_file()
    for _, container in _binds(services["clickhouse"]):
        assert container == "/docker-entrypoint-initdb.d"


def test_credentials_come_from_env_with_a_safe_example() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert {"CLICKHOUSE_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "GRAFANA_CH_PASSWORD"} <= required
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    used = set(re.findall(r"\$\{(\w+)", text))
    assert used <= set(example), f"missing from .env.example: {used - set(example)}"
    for key, value in example.items():
        if "PASSWORD" in key:
            assert value == "CHANGE_ME", f"{key}: ship a placeholder, not a secret"
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    for name, service in _services().items():
        for key, value in service.get("environment", {}).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{name}: literal {key} in docker-compose.yml"


def _compose_client() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            return command
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_client()
    if command is None:
        pytest.skip(
            "no working `docker compose` client installed (checked `docker compose version`)"
        )
    result = subprocess.run(
        [*command, "--env-file", ".env.example", "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


# The SCRAM users of the compose broker, and which tracker service logs in as which.
KAFKA_USERS = ("admin", "intake", "worker", "ticker")
SERVICE_LOGINS = {
    "kafka-acls": "admin",
    "serve": "intake",
    "tracker-worker": "worker",
    "tracker-ticker": "ticker",
}


def test_kafka_takes_scram_logins_and_enforces_acls() -> None:
    kafka = _services()["kafka"]
    # our start script, mounted from the repository, instead of the image's own
    assert kafka["entrypoint"] == ["/bin/bash", "/opt/tracker/broker.sh"]
    mounts = dict((container, host) for host, container in _binds(kafka))
    script = ROOT / mounts["/opt/tracker"] / "broker.sh"
    text = script.read_text(encoding="utf-8")
    properties = text.split("<<EOF\n", 1)[1].split("\nEOF\n", 1)[0]
    props = dict(line.split("=", 1) for line in properties.splitlines())
    # no listener without SASL, SCRAM only for clients, PLAIN only on the in-JVM controller link
    assert props["listener.security.protocol.map"] == (
        "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert props["listeners"].startswith("CLIENT://") and "PLAINTEXT://" not in props["listeners"]
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "$mechanism"
    assert "mechanism=SCRAM-SHA-512\n" in text
    assert "CONTROLLER://127.0.0.1:" in props["listeners"], "controller: loopback only"
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:controller"
    # the users: formatted in from the environment, no password on a command line
    assert "users=(admin intake worker ticker)" in text
    assert '"@$work/format.args"' in text and "--add-config-file" in text
    env = kafka["environment"]
    for user in KAFKA_USERS:
        key = f"KAFKA_{user.upper()}_PASSWORD"
        assert re.fullmatch(rf"\$\{{{key}:\?[^}}]+\}}", env[key]), f"{key} must be required"


def test_kafka_is_reached_only_inside_the_stack_with_each_services_own_login() -> None:
    services = _services()
    assert "ports" not in services["kafka"], "the broker is not published"
    for name, user in SERVICE_LOGINS.items():
        env = services[name]["environment"]
        assert env["TRACKER_KAFKA"] == "kafka:9092"
        assert env["TRACKER_KAFKA_USER"] == user, name
        password = f"KAFKA_{user.upper()}_PASSWORD"
        assert env["TRACKER_KAFKA_PASSWORD"].startswith(f"${{{password}:?"), name
    # every tracker service waits for its ACLs
    for name in ("serve", "tracker-worker", "tracker-ticker"):
        assert services[name]["depends_on"]["kafka-acls"] == {
            "condition": "service_completed_successfully"
        }
    acls = services["kafka-acls"]
    assert acls["command"][:3] == ["python", "-m", "streams.kafka_acls"]
    assert (ROOT / "streams" / "kafka_acls.py").is_file()


def test_only_serve_and_grafana_are_published() -> None:
    published = {
        name: [str(port) for port in service.get("ports", [])]
        for name, service in _services().items()
        if service.get("ports")
    }
    assert published == {"serve": ["127.0.0.1:8000:8000"], "grafana": ["127.0.0.1:3000:3000"]}
    serve = _services()["serve"]
    # it listens on the compose network (the published port is what limits it to 127.0.0.1),
    # produces to the broker as the intake, and is healthy when its API answers
    assert serve["command"] == ["tracker", "serve", "--bootstrap", "kafka:9092"]
    assert serve["environment"]["TRACKER_SERVE_HOST"] == "0.0.0.0"
    assert serve["environment"]["TRACKER_SERVE_PORT"] == "8000"
    assert "/healthz" in " ".join(serve["healthcheck"]["test"])
