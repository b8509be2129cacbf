#!/usr/bin/env bash
# The compose stack's Kafka broker, locked down like `tracker kafka start` (docs/kafka-local.md):
# one KRaft node whose client listener speaks SASL/SCRAM-SHA-512 only, ACLs enforced by the
# StandardAuthorizer, and the principals admin (super user), intake, worker and ticker with the
# passwords from .env. Run as the apache/kafka image's entrypoint; the ACLs themselves are granted
# by the `kafka-acls` service (python -m streams.kafka_acls) once this one is healthy.
#
# The users are written into the metadata log when the volume is formatted (KIP-900). On every
# later start the admin sets the other users' passwords again from the environment, so a changed
# KAFKA_INTAKE/WORKER/TICKER_PASSWORD takes effect at the next `docker compose up -d`; the admin's
# own password is changed on the running broker first (docs/kafka-local.md, "Rotating").
#
# Everything has a default for the container; the integration tests run this same script on the
# host with the local broker's jars (KAFKA_LIBS, KAFKA_DATA_DIR, ... below).
set -euo pipefail
umask 077

libs=${KAFKA_LIBS:-/opt/kafka/libs}
data=${KAFKA_DATA_DIR:-/var/lib/kafka/data}
work=${TRACKER_KAFKA_WORK:-/tmp/tracker-kafka}
bind=${KAFKA_BIND_HOST:-0.0.0.0}
advertised=${KAFKA_ADVERTISED_HOST:-kafka}
port=${KAFKA_CLIENT_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
log4j=${KAFKA_LOG4J_CONFIG:-/opt/kafka/config/log4j2.yaml}
mechanism=SCRAM-SHA-512
users=(admin intake worker ticker)

fail() { echo "kafka: $*" >&2; exit 1; }
: "${CLUSTER_ID:?set KAFKA_CLUSTER_ID in .env}"
for user in "${users[@]}"; do
  var="KAFKA_${user^^}_PASSWORD"
  value=${!var:-}
  [[ -n $value ]] || fail "$var is not set (see .env.example)"
  # They sit in JAAS strings and properties files: nothing to quote or escape, and not short.
  [[ $value =~ ^[A-Za-z0-9._~-]{12,}$ ]] \
    || fail "$var: use 12 or more letters, digits and - _ . ~ only"
  [[ $value != CHANGE_ME ]] || fail "$var is still CHANGE_ME"
done

mkdir -p "$work" "$data"
chmod 700 "$work"
# The broker's own login to its controller listener: made now, known to this container only.
controller_password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

cat > "$work/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
controller.listener.names=CONTROLLER
listeners=CLIENT://$bind:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=CLIENT://$advertised:$port
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
sasl.enabled.mechanisms=$mechanism
sasl.mechanism.inter.broker.protocol=$mechanism
sasl.mechanism.controller.protocol=PLAIN
listener.name.client.sasl.enabled.mechanisms=$mechanism
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$controller_password" user_controller="$controller_password";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:controller
allow.everyone.if.no.acl.found=false
log.dirs=$data
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

# Client logins for the tools below and the healthcheck (this container only, mode 0600).
cat > "$work/controller.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$controller_password";
EOF
cat > "$work/admin.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=$mechanism
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
EOF

java_opts=(-Xms128m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true)
# The tools (storage format, the readiness probe, the SCRAM users) each run a few seconds: done
# before the JIT's second tier would pay off, which only costs them CPU (streams/broker_jvm.py).
tool_opts=(-Xmx256m -XX:TieredStopAtLevel=1)
if [[ -f $log4j ]]; then
  java_opts+=("-Dlog4j2.configurationFile=$log4j")
  tool_opts+=("-Dlog4j2.configurationFile=$log4j")
fi
tool() { java "${tool_opts[@]}" -cp "$libs/*" "$@"; }

if [[ ! -f $data/meta.properties ]]; then
  # The users go in at format time too (KIP-900), through an argument file: no password on a
  # command line that `ps` would show.
  : > "$work/format.args"
  for user in "${users[@]}"; do
    var="KAFKA_${user^^}_PASSWORD"
    printf -- '--add-scram\n%s=[name=%s,password=%s]\n' "$mechanism" "$user" "${!var}" \
      >> "$work/format.args"
  done
  tool kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$work/server.properties" \
    "@$work/format.args"
  rm -f "$work/format.args"
fi

rm -f "$work/ready"
java "${java_opts[@]}" -cp "$libs/*" kafka.Kafka "$work/server.properties" &
broker=$!
stop() { kill -TERM "$broker" 2>/dev/null || true; wait "$broker"; exit $?; }
trap stop TERM INT

config() {
  tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$port" \
    --command-config "$work/admin.properties" "$@"
}
# Ready when the admin can log in (which also proves its password is the volume's).
ready=
for _ in $(seq 90); do
  kill -0 "$broker" 2>/dev/null || { wait "$broker" || true; fail "the broker exited during startup"; }
  if config --describe --entity-type users > /dev/null 2>&1; then ready=1; break; fi
  sleep 1
done
[[ -n $ready ]] || fail "the admin cannot log in: KAFKA_ADMIN_PASSWORD is not the one this volume was formatted with"
for user in "${users[@]:1}"; do
  var="KAFKA_${user^^}_PASSWORD"
  # --add-config-file: the password stays off the command line. Its value has no brackets.
  printf '%s=password=%s\n' "$mechanism" "${!var}" > "$work/scram.properties"
  config --alter --add-config-file "$work/scram.properties" --entity-type users \
    --entity-name "$user" > /dev/null
done
rm -f "$work/scram.properties"
touch "$work/ready"
echo "kafka: ready on $advertised:$port (SASL/SCRAM; users ${users[*]})"
wait "$broker"
