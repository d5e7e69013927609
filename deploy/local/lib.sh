# shellcheck shell=bash
# Shared code of deploy/local/{up,down,status,logs,restart}. Sourced, never run.
#
# Real Kafka (KRaft, broker+controller in one JVM) and Cassandra servers started from
# Maven Central jars, for development and CI. Everything they write lives under
# $LOCAL_SERVERS_HOME (default deploy/local/.cache, git-ignored):
#   lib/kafka, lib/cassandra          jars copied from ~/.m2 by Maven (once per pom change)
#   run/<server>/pid                 pid recorded at start; the only thing `down` kills
#   run/<server>/ports               ports it was started with
#   run/<server>/conf, data, logs    generated config, data (kept across restarts), logs

set -euo pipefail

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
SERVERS_HOME="${LOCAL_SERVERS_HOME:-$LOCAL_DIR/.cache}"
case "$SERVERS_HOME" in /*) ;; *) SERVERS_HOME="$ROOT/$SERVERS_HOME" ;; esac
LIB_DIR="$SERVERS_HOME/lib"
RUN_DIR="$SERVERS_HOME/run"
ALL_SERVERS=(kafka cassandra)

# ----------------------------------------------------------------------------- settings
HOST=127.0.0.1
for _v in KAFKA_PORT KAFKA_CONTROLLER_PORT CASSANDRA_PORT CASSANDRA_STORAGE_PORT CASSANDRA_JMX_PORT; do
  case "${!_v:-}" in
    "" | [1-9] | [1-9][0-9] | [1-9][0-9][0-9] | [1-9][0-9][0-9][0-9] | [1-5][0-9][0-9][0-9][0-9] | 6[0-5][0-9][0-9][0-9]) ;;
    *) echo "error: $_v=${!_v} is not a port number" >&2; exit 2 ;;
  esac
done
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
CASSANDRA_PORT="${CASSANDRA_PORT:-9042}"
# 7000 and 7199 for the default CQL port; they shift along with CASSANDRA_PORT otherwise.
CASSANDRA_STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-$((CASSANDRA_PORT - 2042))}"
CASSANDRA_JMX_PORT="${CASSANDRA_JMX_PORT:-$((CASSANDRA_PORT - 1843))}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
CASSANDRA_HEAP="${CASSANDRA_HEAP:-1g}"
# Processors the Cassandra JVM sees; concurrent_writes follows it (see write_cassandra_config).
CASSANDRA_CPUS="${CASSANDRA_CPUS:-$(nproc 2>/dev/null || echo 2)}"
KAFKA_NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-1}"
KAFKA_UP_TIMEOUT="${KAFKA_UP_TIMEOUT:-90}"
CASSANDRA_UP_TIMEOUT="${CASSANDRA_UP_TIMEOUT:-240}"
DOWN_TIMEOUT="${DOWN_TIMEOUT:-60}"
MVN="${MVN:-mvn}"
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then JAVA="${JAVA:-$JAVA_HOME/bin/java}"; fi
JAVA="${JAVA:-java}"

# The probes only need the standard library; the venv's interpreter is just the default.
PY="${PYTHON:-.venv/bin/python}"
case "$PY" in /*) ;; */*) PY="$ROOT/$PY" ;; *) PY="$(command -v "$PY" || echo "$PY")" ;; esac
if [ ! -x "$PY" ]; then
  [ -n "${PYTHON:-}" ] && echo "warning: PYTHON=$PYTHON is not executable; using python3" >&2
  PY="$(command -v python3 || true)"
fi

# ------------------------------------------------------------------------------ helpers
say() { echo "$*"; }
die() { echo "error: $*" >&2; exit 1; }

probe() { "$PY" "$LOCAL_DIR/probe.py" "$@"; }

check_server_name() {
  case "$1" in kafka | cassandra) ;; *) die "unknown server '$1' (expected kafka or cassandra)" ;; esac
}

# Expands the command line's server names ("", "all", "kafka", "cassandra") into SERVERS.
parse_servers() {
  SERVERS=()
  local a
  for a in "$@"; do
    case "$a" in
      all) SERVERS=("${ALL_SERVERS[@]}") ;;
      *) check_server_name "$a"; SERVERS+=("$a") ;;
    esac
  done
  [ ${#SERVERS[@]} -gt 0 ] || SERVERS=("${ALL_SERVERS[@]}")
}

take_lock() {
  mkdir -p "$SERVERS_HOME"
  exec 9>"$SERVERS_HOME/.lock"
  flock -w 900 9 || die "another deploy/local command holds $SERVERS_HOME/.lock"
}

sdir() { echo "$RUN_DIR/$1"; }
marker() { echo "-Dinterest_stream.local=$1:$SERVERS_HOME"; }

main_port() { if [ "$1" = kafka ]; then echo "$KAFKA_PORT"; else echo "$CASSANDRA_PORT"; fi; }

# "PORT NAME" lines of every port the server binds.
server_ports() {
  if [ "$1" = kafka ]; then
    printf '%s KAFKA_PORT\n%s KAFKA_CONTROLLER_PORT\n' "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  else
    printf '%s CASSANDRA_PORT\n%s CASSANDRA_STORAGE_PORT\n%s CASSANDRA_JMX_PORT\n' \
      "$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT" "$CASSANDRA_JMX_PORT"
  fi
}

# Port the running server was started with (falls back to the configured one).
recorded_port() {
  local f; f="$(sdir "$1")/ports"
  if [ -f "$f" ]; then head -n1 "$f" | cut -d' ' -f1; else main_port "$1"; fi
}

# Prints the pid of the running server if the recorded pid is alive AND is our JVM
# (its command line carries our marker: a recycled pid or a zombie never matches).
server_pid() {
  local f pid; f="$(sdir "$1")/pid"
  [ -f "$f" ] || return 1
  pid="$(tr -dc '0-9' <"$f")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  # (grep without -q reads all its input: no SIGPIPE for tr under pipefail)
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -xF -- "$(marker "$1")" >/dev/null || return 1
  echo "$pid"
}

# True while the pid exists and is not a zombie. A dying JVM loses its command line
# (exit_mm) before it closes its sockets (exit_files), so `down` waits on this too.
pid_alive() {
  local st
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

rss_mib() { awk '/^VmRSS:/ { printf "%d MiB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }

server_log() { if [ "$1" = kafka ]; then echo "$(sdir kafka)/logs/server.log"; else echo "$(sdir cassandra)/logs/system.log"; fi; }
server_out() { echo "$(sdir "$1")/logs/$1.out"; }

show_log_tail() {
  local s="$1" n="${2:-40}" f
  for f in "$(server_out "$s")" "$(server_log "$s")"; do
    if [ -s "$f" ]; then
      echo "----- last $n lines of $f -----" >&2
      tail -n "$n" "$f" >&2
    fi
  done
  echo "----- (more: deploy/local/logs $s) -----" >&2
}

ready() { # server -> 0 when its client port answers a real request
  probe "$1" "$HOST" "$(recorded_port "$1")" 2>/dev/null
}

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Java 17+ is needed; set JAVA_HOME or JAVA)"
  local v
  v="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')"
  [ "${v%%.*}" -ge 17 ] 2>/dev/null || die "Java 17+ is needed, $JAVA is version ${v:-unknown}"
}

check_python() {
  if [ -n "$PY" ] && [ -x "$PY" ]; then return 0; fi
  die "no python interpreter for the readiness probes (set PYTHON)"
}

# ---------------------------------------------------------------------------- jars
# Copies the server's jars out of the Maven repository once per pom.xml content.
# Maven runs offline first, so a warm ~/.m2 never touches the network.
resolve_jars() {
  local s="$1" dest="$LIB_DIR/$1" stamp tmp log
  stamp="$(sha256sum "$LOCAL_DIR/pom.xml" | cut -c1-16)"
  if [ -f "$dest/.resolved" ] && [ "$(cat "$dest/.resolved")" = "$stamp" ]; then return 0; fi
  command -v "$MVN" >/dev/null 2>&1 || die "mvn not found: Maven is needed once to fetch the $s jars"
  mkdir -p "$LIB_DIR"
  tmp="$LIB_DIR/.$s.tmp.$$"
  log="$LIB_DIR/mvn-$s.log"
  rm -rf "$tmp"
  say "$s: copying jars into $dest (Maven)"
  local args=(-q -B -f "$LOCAL_DIR/pom.xml" -P "$s" dependency:copy-dependencies "-DoutputDirectory=$tmp")
  if ! "$MVN" -o "${args[@]}" >"$log" 2>&1; then
    rm -rf "$tmp"
    if ! "$MVN" "${args[@]}" >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      rm -rf "$tmp"
      die "Maven could not resolve the $s jars (log: $log)"
    fi
  fi
  echo "$stamp" >"$tmp/.resolved"
  rm -rf "$dest"
  mv "$tmp" "$dest"
}

# ------------------------------------------------------------------------ configs
write_kafka_config() {
  local d; d="$(sdir kafka)"
  mkdir -p "$d/conf" "$d/data" "$d/logs"
  cat >"$d/conf/server.properties" <<EOF
# Generated by deploy/local/up at every start; edit deploy/local/lib.sh instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$d/data
num.partitions=$KAFKA_NUM_PARTITIONS
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
# single node: internal topics with one replica, few partitions (fast first group join)
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# after a kill -9 the restarted broker must wait out its old session (default 9 s)
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
# small machine: fewer threads, small log-cleaner buffer (default 128 MiB of heap)
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
EOF
}

write_cassandra_config() {
  local d; d="$(sdir cassandra)"
  mkdir -p "$d"/{conf,data,commitlog,saved_caches,hints,cdc_raw,logs,triggers}
  cat >"$d/conf/cassandra.yaml" <<EOF
# Generated by deploy/local/up at every start; edit deploy/local/lib.sh instead.
cluster_name: interest-stream-local
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
auto_bootstrap: false
storage_compatibility_mode: NONE
data_file_directories: [$d/data]
commitlog_directory: $d/commitlog
saved_caches_directory: $d/saved_caches
hints_directory: $d/hints
cdc_raw_directory: $d/cdc_raw
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$CASSANDRA_STORAGE_PORT"
listen_address: $HOST
rpc_address: $HOST
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CASSANDRA_PORT
start_native_transport: true
endpoint_snitch: SimpleSnitch
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
commitlog_sync: periodic
commitlog_sync_period: 10000ms
# SAI is the default index; vector<float, N> needs nothing to enable.
default_secondary_index: sai
default_secondary_index_enabled: true
materialized_views_enabled: false
sasi_indexes_enabled: false
user_defined_functions_enabled: false
# dev node: no snapshots on drop/truncate, no hints, little background work and memory
auto_snapshot: false
snapshot_before_compaction: false
incremental_backups: false
hinted_handoff_enabled: false
concurrent_compactors: 1
concurrent_reads: 8
# jvector's in-memory graph of an SAI vector index takes at most (JVM processors + 1)
# concurrent inserts; past that, writes fail with "Number of outstanding pooled objects
# has gone beyond the limit" (CASSANDRA-21644, not fixed in 5.0.9). Every memtable write
# holds a MutationStage permit, so this bound keeps vector writes (LWT commits included)
# within jvector's limit.
concurrent_writes: $((CASSANDRA_CPUS + 1))
concurrent_counter_writes: $((CASSANDRA_CPUS + 1))
concurrent_materialized_view_writes: $((CASSANDRA_CPUS + 1))
memtable_allocation_type: heap_buffers
key_cache_size: 16MiB
counter_cache_size: 0MiB
file_cache_size: 32MiB
networking_cache_size: 16MiB
diagnostic_events_enabled: false
EOF
}

# ------------------------------------------------------------------- start/stop
# Starts "$@" in its own session, detached from this shell; its pid goes to the pid file
# before exec, so the pid recorded is the JVM's own.
launch() {
  local s="$1" d out; shift
  d="$(sdir "$s")"
  out="$(server_out "$s")"
  mkdir -p "$d/logs"
  rm -f "$d/pid"
  server_ports "$s" | cut -d' ' -f1 | tr '\n' ' ' | sed 's/ $/\n/' >"$d/ports"
  echo "===== $(date '+%F %T') deploy/local starting $s =====" >>"$out"
  # setsid: own session, so no terminal hang-up or Ctrl-C reaches it. The inner shell
  # records its pid, closes every inherited descriptor above 2 (our lock, callers' pipes)
  # and execs the JVM, so the recorded pid is the JVM's.
  (
    cd "$d"
    # shellcheck disable=SC2016 # expanded by the inner shell
    exec setsid bash -c 'echo $$ >"$0"
      for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
      exec "$@"' "$d/pid" "$@" >>"$out" 2>&1 </dev/null 9>&-
  ) &
  local _
  for _ in $(seq 50); do [ -s "$d/pid" ] && return 0; sleep 0.1; done
  die "$s: the launcher did not record a pid"
}

start_kafka() {
  local d lib; d="$(sdir kafka)"; lib="$LIB_DIR/kafka"
  write_kafka_config
  local logopts=(-Dlog4j2.configurationFile="$LOCAL_DIR/conf/kafka-log4j2.xml" -Dkafka.logs.dir="$d/logs")
  if [ ! -f "$d/data/meta.properties" ]; then
    local cid
    cid="$(probe kafka-cluster-id)"
    say "kafka: formatting storage (cluster id $cid)"
    if ! "$JAVA" -Xmx256m "${logopts[@]}" -cp "$lib/*" kafka.tools.StorageTool format \
      -t "$cid" -c "$d/conf/server.properties" --ignore-formatted >"$d/logs/format.log" 2>&1; then
      cat "$d/logs/format.log" >&2
      die "kafka: formatting storage in $d/data failed"
    fi
  fi
  # shellcheck disable=SC2206
  local extra=(${KAFKA_JVM_OPTS:-})
  launch kafka "$JAVA" "$(marker kafka)" \
    -Xms128m -Xmx"$KAFKA_HEAP" -Xss512k -XX:+ExitOnOutOfMemoryError \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -XX:+HeapDumpOnOutOfMemoryError \
    -XX:HeapDumpPath="$d/logs" -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
    "${logopts[@]}" "${extra[@]}" \
    -cp "$lib/*" kafka.Kafka "$d/conf/server.properties"
}

start_cassandra() {
  local d lib jamm; d="$(sdir cassandra)"; lib="$LIB_DIR/cassandra"
  write_cassandra_config
  local jamms=("$lib"/jamm-*.jar)
  jamm="${jamms[0]}"
  [ -f "$jamm" ] || die "cassandra: no jamm jar in $lib"
  # shellcheck disable=SC2206
  local extra=(${CASSANDRA_JVM_OPTS:-})
  # JVM flags: Cassandra 5.0's conf/jvm-server.options and jvm17-server.options, minus
  # -XX:+AlwaysPreTouch and -Xms=-Xmx (both make the whole heap resident).
  launch cassandra "$JAVA" "$(marker cassandra)" \
    -Xms256m -Xmx"$CASSANDRA_HEAP" -Xss256k -XX:+ExitOnOutOfMemoryError \
    -XX:ActiveProcessorCount="$CASSANDRA_CPUS" \
    -ea -da:net.openhft... \
    -XX:+UseThreadPriorities -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$d/logs" \
    -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem \
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 \
    -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 \
    -XX:InitiatingHeapOccupancyPercent=70 \
    -Djava.net.preferIPv4Stack=true \
    -Djdk.attach.allowAttachSelf=true \
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED \
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED \
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED \
    --add-exports java.sql/java.sql=ALL-UNNAMED \
    --add-exports java.base/java.lang.ref=ALL-UNNAMED \
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED \
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED \
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED \
    --add-opens java.base/java.lang.module=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED \
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
    --add-opens java.base/java.io=ALL-UNNAMED \
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED \
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED \
    --add-opens java.base/java.util=ALL-UNNAMED \
    -Dio.netty.tryReflectionSetAccessible=true \
    -Dio.netty.allocator.useCacheForAllThreads=true \
    -Dio.netty.allocator.maxOrder=11 \
    -javaagent:"$jamm" \
    -Dcassandra.config="file://$d/conf/cassandra.yaml" \
    -Dcassandra.storagedir="$d" \
    -Dcassandra.logdir="$d/logs" \
    -Dcassandra.triggers_dir="$d/triggers" \
    -Dlogback.configurationFile="$LOCAL_DIR/conf/cassandra-logback.xml" \
    -Dcassandra.jmx.local.port="$CASSANDRA_JMX_PORT" \
    -Dcassandra-foreground=yes \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.ring_delay_ms=1000 \
    "${extra[@]}" \
    -cp "$lib/*" org.apache.cassandra.service.CassandraDaemon
}

# Fails (without starting anything) if one of the server's ports is taken.
# A port is re-checked for a few seconds: a server that just exited can leave its
# listening socket behind for a moment.
check_ports_free() {
  local s="$1" busy port name msg="" t0=$SECONDS
  # shellcheck disable=SC2046
  until busy="$(probe port-free $(server_ports "$s" | cut -d' ' -f1))"; do
    [ $((SECONDS - t0)) -ge "${PORT_WAIT:-5}" ] && break
    sleep 0.25
  done
  [ -z "$busy" ] && return 0
  for port in $busy; do
    name="$(server_ports "$s" | awk -v p="$port" '$1 == p { print $2; exit }')"
    msg+="  port $port ($name) on $HOST is already in use by another process"
    if command -v ss >/dev/null 2>&1; then
      local who
      who="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:(([^)]*' | head -n1 | sed 's/users:((//')"
      [ -n "$who" ] && msg+=": $who"
    fi
    msg+=$'\n'
  done
  echo "error: $s cannot start:" >&2
  printf '%s' "$msg" >&2
  echo "  stop that process, or choose other ports, e.g. $(server_ports "$s" | awk -v p="${busy%% *}" '$1 == p { print $2; exit }')=<free port> $LOCAL_DIR/up $s" >&2
  return 1
}

check_no_overlap() { # among the ports of the servers about to start
  local dup
  dup="$(for s in "$@"; do server_ports "$s"; done | cut -d' ' -f1 | sort | uniq -d | head -n1)"
  [ -z "$dup" ] || die "port $dup is configured twice: $(for s in "$@"; do server_ports "$s"; done | awk -v p="$dup" '$1 == p { printf "%s ", $2 }')"
}

# up for one server, not waiting: 0 = started or already running, 1 = refused.
start_server() {
  local s="$1" pid
  if pid="$(server_pid "$s")"; then
    local rec; rec="$(recorded_port "$s")"
    if [ "$rec" != "$(main_port "$s")" ]; then
      echo "error: $s is already running on $HOST:$rec (pid $pid), but port $(main_port "$s") was asked for; run $LOCAL_DIR/down $s first" >&2
      return 1
    fi
    say "$s: already running (pid $pid, $HOST:$rec)"
    return 0
  fi
  [ -f "$(sdir "$s")/pid" ] && say "$s: removing stale pid file (previous run died)"
  rm -f "$(sdir "$s")/pid"
  check_ports_free "$s" || return 1
  "start_$s"
  say "$s: started (pid $(cat "$(sdir "$s")/pid"), $HOST:$(main_port "$s"), logs $(server_log "$s"))"
}

wait_ready() {
  local s="$1" timeout t0 deadline out
  if [ "$s" = kafka ]; then timeout="$KAFKA_UP_TIMEOUT"; else timeout="$CASSANDRA_UP_TIMEOUT"; fi
  t0=$SECONDS
  deadline=$((SECONDS + timeout))
  while :; do
    if out="$(ready "$s")"; then
      say "$s: ready on $HOST:$(recorded_port "$s") after $((SECONDS - t0))s ($out)"
      return 0
    fi
    if ! server_pid "$s" >/dev/null; then
      echo "error: $s exited during start-up" >&2
      show_log_tail "$s"
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "error: $s (pid $(server_pid "$s")) did not answer on $HOST:$(recorded_port "$s") within ${timeout}s; it is left running: inspect it, then $LOCAL_DIR/down $s" >&2
      show_log_tail "$s"
      return 1
    fi
    sleep 1
  done
}

stop_server() {
  local s="$1" pid f t0; f="$(sdir "$s")/pid"
  if ! pid="$(server_pid "$s")"; then
    if [ -f "$f" ]; then say "$s: not running (removed stale pid file)"; else say "$s: not running"; fi
    rm -f "$f"
    return 0
  fi
  t0=$SECONDS
  kill -TERM "$pid" 2>/dev/null || true
  while pid_alive "$pid" && [ $((SECONDS - t0)) -lt "$DOWN_TIMEOUT" ]; do sleep 0.25; done
  if pid_alive "$pid" && server_pid "$s" >/dev/null; then
    say "$s: still alive after ${DOWN_TIMEOUT}s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  local _
  for _ in $(seq 80); do pid_alive "$pid" || break; sleep 0.25; done
  pid_alive "$pid" && die "$s: pid $pid is still there 20s after KILL"
  rm -f "$f"
  say "$s: stopped (pid $pid, $((SECONDS - t0))s)"
}

# Prints one status line; returns 0 only when running and answering.
status_server() {
  local s="$1" pid port out
  port="$(recorded_port "$s")"
  if pid="$(server_pid "$s")"; then
    if out="$(ready "$s")"; then
      say "$s: running, ready (pid $pid, $HOST:$port, RSS $(rss_mib "$pid"), $out)"
      return 0
    fi
    say "$s: running, not answering yet (pid $pid, $HOST:$port, RSS $(rss_mib "$pid"))"
    return 1
  fi
  if [ -f "$(sdir "$s")/pid" ]; then
    say "$s: stopped: it died (stale pid file; see $LOCAL_DIR/logs $s)"
  else
    say "$s: stopped"
  fi
  probe port-free "$(main_port "$s")" >/dev/null || say "  note: $HOST:$(main_port "$s") is in use by another process"
  return 1
}
