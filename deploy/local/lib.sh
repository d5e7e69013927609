# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2034 # globals set here are read by the scripts and lib-*.sh
# Shared code of deploy/local/{up,down,status,logs,restart,kill,cql}. Sourced, never run.
#
# Real Kafka (KRaft, broker+controller in one JVM) and Cassandra servers started from
# Maven Central jars, for development and CI. Three topologies, each a set of named
# servers that can run side by side (different ports / loopback addresses):
#   single   kafka, cassandra                    plaintext, 127.0.0.1 (the default)
#   secure   kafka-secure, cassandra-secure      Kafka SASL_SSL (SCRAM-SHA-512) + ACLs,
#                                                Cassandra TLS + password auth + roles
#   nodes    kafka-1..N, cassandra-1..N          N nodes each on 127.0.0.1..N (--nodes 3)
# Everything they write lives under $LOCAL_SERVERS_HOME (default deploy/local/.cache,
# git-ignored):
#   lib/kafka, lib/cassandra          jars copied from ~/.m2 by Maven (once per pom change)
#   run/<server>/pid                 pid recorded at start; the only thing `down` kills
#   run/<server>/instance.env        address, ports and heap it was started with
#   run/<server>/conf, data, logs    generated config, data (kept across restarts), logs
#   secure/                          throwaway CA, keystores, passwords, credentials.env
#   nodes/                           the multi-node cluster's id and cluster.env

set -euo pipefail

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
SERVERS_HOME="${LOCAL_SERVERS_HOME:-$LOCAL_DIR/.cache}"
case "$SERVERS_HOME" in /*) ;; *) SERVERS_HOME="$ROOT/$SERVERS_HOME" ;; esac
LIB_DIR="$SERVERS_HOME/lib"
RUN_DIR="$SERVERS_HOME/run"
SECURE_DIR="$SERVERS_HOME/secure"
NODES_DIR="$SERVERS_HOME/nodes"

# ----------------------------------------------------------------------------- settings
HOST=127.0.0.1
PORT_VARS=(KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_SECURE_PORT KAFKA_SECURE_CONTROLLER_PORT
  KAFKA_NODES_PORT KAFKA_NODES_CONTROLLER_PORT CASSANDRA_PORT CASSANDRA_STORAGE_PORT
  CASSANDRA_JMX_PORT CASSANDRA_SECURE_PORT CASSANDRA_SECURE_STORAGE_PORT CASSANDRA_SECURE_JMX_PORT
  CASSANDRA_NODES_PORT CASSANDRA_NODES_STORAGE_PORT CASSANDRA_NODES_JMX_PORT)
is_port() {
  case "$1" in
    [1-9] | [1-9][0-9] | [1-9][0-9][0-9] | [1-9][0-9][0-9][0-9] | [1-5][0-9][0-9][0-9][0-9] | 6[0-4][0-9][0-9][0-9] | 65[0-4][0-9][0-9] | 655[0-2][0-9] | 6553[0-5]) ;;
    *) return 1 ;;
  esac
}
for _v in "${PORT_VARS[@]}"; do
  [ -z "${!_v:-}" ] || is_port "${!_v}" || { echo "error: $_v=${!_v} is not a port number" >&2; exit 2; }
done
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_SECURE_PORT="${KAFKA_SECURE_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_SECURE_CONTROLLER_PORT="${KAFKA_SECURE_CONTROLLER_PORT:-$((KAFKA_SECURE_PORT + 1))}"
KAFKA_NODES_PORT="${KAFKA_NODES_PORT:-$((KAFKA_PORT + 10))}"
KAFKA_NODES_CONTROLLER_PORT="${KAFKA_NODES_CONTROLLER_PORT:-$((KAFKA_NODES_PORT + 1))}"
CASSANDRA_PORT="${CASSANDRA_PORT:-9042}"
# 7000 and 7199 for the default CQL port; they shift along with CASSANDRA_PORT otherwise.
CASSANDRA_STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-$((CASSANDRA_PORT - 2042))}"
CASSANDRA_JMX_PORT="${CASSANDRA_JMX_PORT:-$((CASSANDRA_PORT - 1843))}"
CASSANDRA_SECURE_PORT="${CASSANDRA_SECURE_PORT:-$((CASSANDRA_PORT + 100))}"
CASSANDRA_SECURE_STORAGE_PORT="${CASSANDRA_SECURE_STORAGE_PORT:-$((CASSANDRA_SECURE_PORT - 2042))}"
CASSANDRA_SECURE_JMX_PORT="${CASSANDRA_SECURE_JMX_PORT:-$((CASSANDRA_SECURE_PORT - 1843))}"
CASSANDRA_NODES_PORT="${CASSANDRA_NODES_PORT:-$((CASSANDRA_PORT + 200))}"
CASSANDRA_NODES_STORAGE_PORT="${CASSANDRA_NODES_STORAGE_PORT:-$((CASSANDRA_NODES_PORT - 2042))}"
# node N's JMX port is this + N - 1 (JMX listens on 127.0.0.1 whatever the node's address)
CASSANDRA_NODES_JMX_PORT="${CASSANDRA_NODES_JMX_PORT:-$((CASSANDRA_NODES_PORT - 1843))}"
for _v in "${PORT_VARS[@]}"; do
  is_port "${!_v}" || { echo "error: $_v=${!_v} (derived) is not a port number; set it explicitly" >&2; exit 2; }
done
# Nodes of the multi-node topology (`--nodes N` sets it): node N listens on 127.0.0.N.
LOCAL_NODES="${LOCAL_NODES:-3}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
CASSANDRA_HEAP="${CASSANDRA_HEAP:-1g}"
KAFKA_SECURE_HEAP="${KAFKA_SECURE_HEAP:-384m}"
CASSANDRA_SECURE_HEAP="${CASSANDRA_SECURE_HEAP:-768m}"
KAFKA_NODE_HEAP="${KAFKA_NODE_HEAP:-320m}"
CASSANDRA_NODE_HEAP="${CASSANDRA_NODE_HEAP:-640m}"
# Processors the Cassandra JVM sees; concurrent_writes follows it (see write_cassandra_config).
CASSANDRA_CPUS="${CASSANDRA_CPUS:-$(nproc 2>/dev/null || echo 2)}"
KAFKA_NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-1}"
KAFKA_UP_TIMEOUT="${KAFKA_UP_TIMEOUT:-90}"
CASSANDRA_UP_TIMEOUT="${CASSANDRA_UP_TIMEOUT:-240}"
DOWN_TIMEOUT="${DOWN_TIMEOUT:-60}"
MVN="${MVN:-mvn}"
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then JAVA="${JAVA:-$JAVA_HOME/bin/java}"; fi
JAVA="${JAVA:-java}"

# The probes talk to the servers through kafka-python and cassandra-driver: the venv's
# interpreter (the project's kafka and cassandra extras) is the default.
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

kind_of() { case "$1" in kafka*) echo kafka ;; *) echo cassandra ;; esac; }

check_nodes() {
  case "$1" in [2-9]) ;; *) die "--nodes $1: expected 2..9 (node N listens on 127.0.0.N)" ;; esac
}

check_server_name() {
  case "$1" in
    kafka | cassandra | kafka-secure | cassandra-secure) return 0 ;;
    kafka-[1-9] | cassandra-[1-9])
      [ "${1##*-}" -le "$LOCAL_NODES" ] || [ -f "$(sdir "$1")/instance.env" ] && return 0
      die "unknown server '$1': the multi-node topology has $LOCAL_NODES nodes (set --nodes N)"
      ;;
  esac
  die "unknown server '$1' (expected kafka, cassandra, kafka-secure, cassandra-secure, kafka-N or cassandra-N)"
}

# The servers of a topology: single, secure or nodes.
group_servers() {
  case "$1" in
    single) echo kafka cassandra ;;
    secure) echo kafka-secure cassandra-secure ;;
    nodes)
      local k=() c=() i
      for i in $(seq "$LOCAL_NODES"); do k+=("kafka-$i"); c+=("cassandra-$i"); done
      echo "${k[*]} ${c[*]}"
      ;;
  esac
}

# Every server that has a pid file under this home (running, or died without `down`).
recorded_servers() {
  local d
  [ -d "$RUN_DIR" ] || return 0
  for d in "$RUN_DIR"/*/; do
    d="${d%/}"
    [ -f "$d/pid" ] && echo "${d##*/}"
  done
  return 0
}

# Parses the command line of up/down/status/logs/restart: --secure, --nodes N, --purge
# (for down), -f/-n (for logs, left in REST) and server names. Sets SERVERS, GROUP_GIVEN.
#   no names, no flag      the single topology (down/status: plus every recorded server)
#   --secure / --nodes N   that topology; a name "kafka" or "cassandra" narrows it
#   names                  those servers; "all" is the topology
parse_servers() {
  SERVERS=()
  GROUP=single
  GROUP_GIVEN=0
  REST=()
  local names=() a
  while [ $# -gt 0 ]; do
    a="$1"
    case "$a" in
      --secure) GROUP=secure; GROUP_GIVEN=1 ;;
      --nodes)
        [ $# -ge 2 ] || die "--nodes needs a number, e.g. --nodes 3"
        shift
        if [ "$1" = 1 ]; then GROUP=single; else check_nodes "$1"; LOCAL_NODES="$1"; GROUP=nodes; fi
        GROUP_GIVEN=1
        ;;
      --nodes=*)
        if [ "${a#*=}" = 1 ]; then GROUP=single; else check_nodes "${a#*=}"; LOCAL_NODES="${a#*=}"; GROUP=nodes; fi
        GROUP_GIVEN=1
        ;;
      -*) REST+=("$a") ;;
      *) names+=("$a") ;;
    esac
    shift
  done
  local in_group
  # shellcheck disable=SC2207
  in_group=($(group_servers "$GROUP"))
  for a in "${names[@]+"${names[@]}"}"; do
    case "$a" in
      all) SERVERS+=("${in_group[@]}") ;;
      kafka | cassandra)
        if [ "$GROUP" = single ]; then
          SERVERS+=("$a")
        else
          local s
          for s in "${in_group[@]}"; do [ "$(kind_of "$s")" = "$a" ] && SERVERS+=("$s"); done
        fi
        ;;
      *) check_server_name "$a"; SERVERS+=("$a") ;;
    esac
  done
  [ ${#SERVERS[@]} -gt 0 ] || SERVERS=("${in_group[@]}")
  NAMES_GIVEN=${#names[@]}
}

# Adds every recorded server to SERVERS (down and status without arguments).
add_recorded_servers() {
  local s t seen
  for s in $(recorded_servers); do
    seen=0
    for t in "${SERVERS[@]}"; do [ "$t" = "$s" ] && seen=1; done
    [ $seen = 1 ] || SERVERS+=("$s")
  done
}

take_lock() {
  mkdir -p "$SERVERS_HOME"
  exec 9>"$SERVERS_HOME/.lock"
  flock -w 900 9 || die "another deploy/local command holds $SERVERS_HOME/.lock"
}

sdir() { echo "$RUN_DIR/$1"; }
marker() { echo "-Dinterest_stream.local=$1:$SERVERS_HOME"; }

# ----------------------------------------------------------------------------- instances
# Sets I_* for server $1 from the environment: I_KIND, I_GROUP, I_NODE, I_NODES, I_ADDR,
# I_PORT, I_CTRL_PORT (Kafka), I_STORAGE_PORT, I_JMX_PORT (Cassandra), I_HEAP, I_SECURE.
configure_instance() {
  local n="$1"
  I_NAME="$n"
  I_KIND="$(kind_of "$n")"
  I_GROUP=single I_NODE=1 I_NODES=1 I_ADDR="$HOST" I_SECURE=0
  I_CTRL_PORT="" I_STORAGE_PORT="" I_JMX_PORT=""
  case "$n" in
    kafka) I_PORT="$KAFKA_PORT" I_CTRL_PORT="$KAFKA_CONTROLLER_PORT" I_HEAP="$KAFKA_HEAP" ;;
    kafka-secure)
      I_GROUP=secure I_SECURE=1 I_PORT="$KAFKA_SECURE_PORT"
      I_CTRL_PORT="$KAFKA_SECURE_CONTROLLER_PORT" I_HEAP="$KAFKA_SECURE_HEAP"
      ;;
    kafka-*)
      I_GROUP=nodes I_NODE="${n##*-}" I_NODES="$LOCAL_NODES" I_ADDR="127.0.0.${n##*-}"
      I_PORT="$KAFKA_NODES_PORT" I_CTRL_PORT="$KAFKA_NODES_CONTROLLER_PORT" I_HEAP="$KAFKA_NODE_HEAP"
      ;;
    cassandra)
      I_PORT="$CASSANDRA_PORT" I_STORAGE_PORT="$CASSANDRA_STORAGE_PORT"
      I_JMX_PORT="$CASSANDRA_JMX_PORT" I_HEAP="$CASSANDRA_HEAP"
      ;;
    cassandra-secure)
      I_GROUP=secure I_SECURE=1 I_PORT="$CASSANDRA_SECURE_PORT"
      I_STORAGE_PORT="$CASSANDRA_SECURE_STORAGE_PORT" I_JMX_PORT="$CASSANDRA_SECURE_JMX_PORT"
      I_HEAP="$CASSANDRA_SECURE_HEAP"
      ;;
    cassandra-*)
      I_GROUP=nodes I_NODE="${n##*-}" I_NODES="$LOCAL_NODES" I_ADDR="127.0.0.${n##*-}"
      I_PORT="$CASSANDRA_NODES_PORT" I_STORAGE_PORT="$CASSANDRA_NODES_STORAGE_PORT"
      I_JMX_PORT="$((CASSANDRA_NODES_JMX_PORT + ${n##*-} - 1))" I_HEAP="$CASSANDRA_NODE_HEAP"
      ;;
  esac
}

INSTANCE_VARS=(I_NAME I_KIND I_GROUP I_NODE I_NODES I_ADDR I_PORT I_CTRL_PORT I_STORAGE_PORT I_JMX_PORT I_HEAP I_SECURE)

record_instance() {
  local v f; f="$(sdir "$I_NAME")/instance.env"
  mkdir -p "$(sdir "$I_NAME")"
  for v in "${INSTANCE_VARS[@]}"; do printf '%s=%q\n' "$v" "${!v}"; done >"$f"
}

# Sets I_* as the server was last started (instance.env), else from the environment.
load_instance() {
  local f; f="$(sdir "$1")/instance.env"
  configure_instance "$1"
  if [ -f "$f" ]; then
    # shellcheck disable=SC1090
    source "$f"
  fi
}

# "ADDR PORT NAME" lines of every port the server binds (I_* set).
server_ports() {
  if [ "$I_KIND" = kafka ]; then
    local client=KAFKA_PORT ctrl=KAFKA_CONTROLLER_PORT
    [ "$I_GROUP" = secure ] && client=KAFKA_SECURE_PORT ctrl=KAFKA_SECURE_CONTROLLER_PORT
    [ "$I_GROUP" = nodes ] && client=KAFKA_NODES_PORT ctrl=KAFKA_NODES_CONTROLLER_PORT
    printf '%s %s %s\n%s %s %s\n' "$I_ADDR" "$I_PORT" "$client" "$I_ADDR" "$I_CTRL_PORT" "$ctrl"
  else
    local p=CASSANDRA_PORT st=CASSANDRA_STORAGE_PORT j=CASSANDRA_JMX_PORT
    [ "$I_GROUP" = secure ] && p=CASSANDRA_SECURE_PORT st=CASSANDRA_SECURE_STORAGE_PORT j=CASSANDRA_SECURE_JMX_PORT
    [ "$I_GROUP" = nodes ] && p=CASSANDRA_NODES_PORT st=CASSANDRA_NODES_STORAGE_PORT j="CASSANDRA_NODES_JMX_PORT+$((I_NODE - 1))"
    # local JMX binds the loopback address 127.0.0.1 whatever the node's own address
    printf '%s %s %s\n%s %s %s\n%s %s %s\n' "$I_ADDR" "$I_PORT" "$p" "$I_ADDR" "$I_STORAGE_PORT" "$st" \
      "$HOST" "$I_JMX_PORT" "$j"
  fi
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

server_log() { if [ "$(kind_of "$1")" = kafka ]; then echo "$(sdir "$1")/logs/server.log"; else echo "$(sdir "$1")/logs/system.log"; fi; }
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

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Java 17+ is needed; set JAVA_HOME or JAVA)"
  local v
  v="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')"
  [ "${v%%.*}" -ge 17 ] 2>/dev/null || die "Java 17+ is needed, $JAVA is version ${v:-unknown}"
}

check_python() {
  [ -n "$PY" ] && [ -x "$PY" ] || die "no python interpreter for the readiness probes (set PYTHON)"
  "$PY" -c 'import kafka.admin, cassandra.cluster' 2>/dev/null ||
    die "$PY lacks kafka-python or cassandra-driver, which the readiness probes use: run make install-all (or set PYTHON)"
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

# ------------------------------------------------------------------- start/stop
# Starts "$@" in its own session, detached from this shell; its pid goes to the pid file
# before exec, so the pid recorded is the JVM's own.
launch() {
  local s="$1" d out; shift
  d="$(sdir "$s")"
  out="$(server_out "$s")"
  mkdir -p "$d/logs"
  rm -f "$d/pid"
  record_instance
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
  local d lib; d="$(sdir "$I_NAME")"; lib="$LIB_DIR/kafka"
  [ "$I_SECURE" = 1 ] && ensure_secure_material
  write_kafka_config
  local logopts=(-Dlog4j2.configurationFile="$LOCAL_DIR/conf/kafka-log4j2.xml" -Dkafka.logs.dir="$d/logs")
  if [ ! -f "$d/data/meta.properties" ]; then
    local cid
    if [ "$I_GROUP" = nodes ]; then cid="$(nodes_cluster_id)"; else cid="$(probe kafka-cluster-id)"; fi
    say "$I_NAME: formatting storage (cluster id $cid)"
    # The format command goes in a java @argfile: SCRAM passwords stay off command lines.
    local argfile="$d/conf/format.args"
    (
      umask 077
      {
        printf '%s\n' -Xmx256m "${logopts[@]}" -cp "'$lib/*'" kafka.tools.StorageTool format \
          -t "$cid" -c "$d/conf/server.properties" --ignore-formatted
        if [ "$I_SECURE" = 1 ]; then
          local u
          for u in "$KAFKA_ADMIN_USER:$KAFKA_ADMIN_PASSWORD" "$KAFKA_INIT_USER:$KAFKA_INIT_PASSWORD" \
            "$KAFKA_WORKER_USER:$KAFKA_WORKER_PASSWORD" "$KAFKA_READER_USER:$KAFKA_READER_PASSWORD" \
            "$KAFKA_ERASER_USER:$KAFKA_ERASER_PASSWORD" "$KAFKA_PRODUCER_USER:$KAFKA_PRODUCER_PASSWORD"; do
            printf '%s\n' --add-scram "'SCRAM-SHA-512=[name=${u%%:*},password=${u#*:}]'"
          done
        fi
      } >"$argfile"
    )
    if ! "$JAVA" "@$argfile" >"$d/logs/format.log" 2>&1; then
      rm -f "$argfile"
      cat "$d/logs/format.log" >&2
      die "$I_NAME: formatting storage in $d/data failed"
    fi
    rm -f "$argfile"
  fi
  # shellcheck disable=SC2206
  local extra=(${KAFKA_JVM_OPTS:-})
  launch "$I_NAME" "$JAVA" "$(marker "$I_NAME")" \
    -Xms128m -Xmx"$I_HEAP" -Xss512k -XX:+ExitOnOutOfMemoryError \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -XX:+HeapDumpOnOutOfMemoryError \
    -XX:HeapDumpPath="$d/logs" -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
    "${logopts[@]}" "${extra[@]+"${extra[@]}"}" \
    -cp "$lib/*" kafka.Kafka "$d/conf/server.properties"
}

start_cassandra() {
  local d lib jamm; d="$(sdir "$I_NAME")"; lib="$LIB_DIR/cassandra"
  [ "$I_SECURE" = 1 ] && ensure_secure_material
  write_cassandra_config
  local jamms=("$lib"/jamm-*.jar)
  jamm="${jamms[0]}"
  [ -f "$jamm" ] || die "$I_NAME: no jamm jar in $lib"
  # shellcheck disable=SC2206
  local extra=(${CASSANDRA_JVM_OPTS:-})
  local topology=()
  [ "$I_GROUP" = nodes ] && topology+=("-Dcassandra-rackdc.properties=file://$d/conf/cassandra-rackdc.properties")
  # the default superuser (replaced at once by `up`) is created without the usual 10 s delay
  [ "$I_SECURE" = 1 ] && topology+=(-Dcassandra.superuser_setup_delay_ms=0)
  # JVM flags: Cassandra 5.0's conf/jvm-server.options and jvm17-server.options, minus
  # -XX:+AlwaysPreTouch and -Xms=-Xmx (both make the whole heap resident), plus the SAI
  # flag that lets the ANN indexes take a graph size (the ann_index_options setting).
  launch "$I_NAME" "$JAVA" "$(marker "$I_NAME")" \
    -Dcassandra.sai.vector.allow_custom_parameters=true \
    -Xms256m -Xmx"$I_HEAP" -Xss256k -XX:+ExitOnOutOfMemoryError \
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
    -Dcassandra.jmx.local.port="$I_JMX_PORT" \
    -Dcassandra-foreground=yes \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.ring_delay_ms=1000 \
    "${topology[@]+"${topology[@]}"}" \
    "${extra[@]+"${extra[@]}"}" \
    -cp "$lib/*" org.apache.cassandra.service.CassandraDaemon
}

# Fails (without starting anything) if one of the server's ports is taken (I_* set).
# A port is re-checked for a few seconds: a server that just exited can leave its
# listening socket behind for a moment.
check_ports_free() {
  local s="$I_NAME" busy addr port name msg="" t0=$SECONDS
  # shellcheck disable=SC2046
  until busy="$(probe port-free $(server_ports | awk '{ print $1 ":" $2 }'))"; do
    [ $((SECONDS - t0)) -ge "${PORT_WAIT:-5}" ] && break
    sleep 0.25
  done
  [ -z "$busy" ] && return 0
  local item
  for item in $busy; do
    addr="${item%:*}" port="${item##*:}"
    name="$(server_ports | awk -v a="$addr" -v p="$port" '$1 == a && $2 == p { print $3; exit }')"
    msg+="  port $port ($name) on $addr is already in use by another process"
    if command -v ss >/dev/null 2>&1; then
      local who
      who="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:(([^)]*' | head -n1 | sed 's/users:((//')"
      [ -n "$who" ] && msg+=": $who"
    fi
    msg+=$'\n'
  done
  echo "error: $s cannot start:" >&2
  printf '%s' "$msg" >&2
  local first="${busy%% *}"
  echo "  stop that process, or choose other ports, e.g. $(server_ports | awk -v a="${first%:*}" -v p="${first##*:}" '$1 == a && $2 == p { sub(/\+.*/, "", $3); print $3; exit }')=<free port> $LOCAL_DIR/up $s" >&2
  return 1
}

check_no_overlap() { # among the ports of the servers about to start
  local all dup s
  all="$(for s in "$@"; do configure_instance "$s"; server_ports | awk -v s="$s" '{ print $1 ":" $2, $3, s }'; done)"
  dup="$(echo "$all" | cut -d' ' -f1 | sort | uniq -d | head -n1)"
  [ -z "$dup" ] || die "port $dup is configured twice: $(echo "$all" | awk -v p="$dup" '$1 == p { printf "%s (%s) ", $2, $3 }')"
}

# up for one server, not waiting: 0 = started or already running, 1 = refused.
# With "recorded" (restart), on the address and ports it last ran with.
start_server() {
  local s="$1" pid
  if [ "${2:-}" = recorded ]; then load_instance "$s"; else configure_instance "$s"; fi
  local want_addr="$I_ADDR" want_port="$I_PORT"
  if pid="$(server_pid "$s")"; then
    load_instance "$s"
    if [ "$I_ADDR:$I_PORT" != "$want_addr:$want_port" ]; then
      echo "error: $s is already running on $I_ADDR:$I_PORT (pid $pid), but $want_addr:$want_port was asked for; run $LOCAL_DIR/down $s first" >&2
      return 1
    fi
    say "$s: already running (pid $pid, $I_ADDR:$I_PORT)"
    return 0
  fi
  [ -f "$(sdir "$s")/pid" ] && say "$s: removing stale pid file (previous run died)"
  rm -f "$(sdir "$s")/pid"
  if [ "${2:-}" = recorded ]; then load_instance "$s"; else configure_instance "$s"; fi
  check_ports_free || return 1
  "start_$I_KIND"
  say "$s: started (pid $(cat "$(sdir "$s")/pid"), $I_ADDR:$I_PORT, logs $(server_log "$s"))"
}

# Runs probe.py against server $1 as it was started (I_* loaded). Secure servers are
# probed over TLS as their admin user; passwords reach the probe in its environment
# (PROBE_PASSWORD), never on a command line.
probe_server() {
  local s="$1"; shift
  load_instance "$s"
  local args=("$I_KIND" "$I_ADDR" "$I_PORT")
  if [ "$I_SECURE" = 1 ]; then
    # shellcheck disable=SC1091
    [ -f "$SECURE_DIR/passwords" ] && source "$SECURE_DIR/passwords"
    args+=(--cafile "$SECURE_DIR/ca.pem")
    if [ "$I_KIND" = kafka ]; then
      PROBE_PASSWORD="${KAFKA_ADMIN_PASSWORD:-}" probe "${args[@]}" --user "$KAFKA_ADMIN_USER" "$@"
    else
      PROBE_PASSWORD="${CASSANDRA_ADMIN_PASSWORD:-}" probe "${args[@]}" --user "$CASSANDRA_ADMIN_ROLE" "$@"
    fi
    return
  fi
  probe "${args[@]}" "$@"
}

# 0 when the server answers a real request. In a multi-node topology, Kafka must also list
# every broker and Cassandra must know every peer.
ready() {
  local s="$1" extra=()
  load_instance "$s"
  if [ "$I_GROUP" = nodes ]; then
    if [ "$I_KIND" = kafka ]; then extra=(--brokers "$I_NODES"); else extra=(--peers "$((I_NODES - 1))"); fi
  fi
  probe_server "$s" "${extra[@]+"${extra[@]}"}" 2>/dev/null
}

# Waits until server $1 answers; for secure servers, then sets up users and roles.
wait_ready() {
  local s="$1" timeout t0 deadline out
  load_instance "$s"
  if [ "$I_KIND" = kafka ]; then timeout="$KAFKA_UP_TIMEOUT"; else timeout="$CASSANDRA_UP_TIMEOUT"; fi
  t0=$SECONDS
  deadline=$((SECONDS + timeout))
  if [ "$s" = cassandra-secure ]; then
    # before its roles exist only the TLS handshake and the CQL STARTUP can be checked
    until probe cassandra "$I_ADDR" "$I_PORT" --cafile "$SECURE_DIR/ca.pem" --auth-required >/dev/null 2>&1; do
      wait_ready_check "$s" "$deadline" "$timeout" || return 1
      sleep 1
    done
    secure_cassandra_setup || { show_log_tail "$s"; return 1; }
  fi
  while :; do
    if out="$(ready "$s")"; then
      if [ "$s" = kafka-secure ]; then secure_kafka_setup || { show_log_tail "$s"; return 1; }; fi
      load_instance "$s"
      say "$s: ready on $I_ADDR:$I_PORT after $((SECONDS - t0))s ($out)"
      return 0
    fi
    wait_ready_check "$s" "$deadline" "$timeout" || return 1
    sleep 1
  done
}

wait_ready_check() { # server deadline timeout -> 1 (with the logs) when it died or timed out
  local s="$1" deadline="$2" timeout="$3"
  if ! server_pid "$s" >/dev/null; then
    echo "error: $s exited during start-up" >&2
    show_log_tail "$s"
    return 1
  fi
  if [ $SECONDS -ge "$deadline" ]; then
    load_instance "$s"
    echo "error: $s (pid $(server_pid "$s")) did not answer on $I_ADDR:$I_PORT within ${timeout}s; it is left running: inspect it, then $LOCAL_DIR/down $s" >&2
    show_log_tail "$s"
    return 1
  fi
}

# Stops servers in parallel: in a KRaft quorum, stopping the nodes one after another could
# leave the last ones without a quorum for their controlled shutdown.
stop_servers() {
  local s pids=() rc=0 p
  if [ $# = 1 ]; then stop_server "$1"; return; fi
  for s in "$@"; do stop_server "$s" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
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
  wait_gone "$s" "$pid"
  rm -f "$f"
  say "$s: stopped (pid $pid, $((SECONDS - t0))s)"
}

wait_gone() { # server pid: waits until the process is gone (sockets closed)
  local _
  for _ in $(seq 80); do pid_alive "$2" || return 0; sleep 0.25; done
  die "$1: pid $2 is still there 20s after KILL"
}

# SIGKILL, like a crash: no shutdown hook runs. The pid file stays (as after a real
# crash); `up`/`restart` start the server again on the same ports with the same data.
kill_server() {
  local s="$1" pid
  if ! pid="$(server_pid "$s")"; then
    say "$s: not running"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$s" "$pid"
  say "$s: killed (SIGKILL, pid $pid)"
}

# Prints one status line; returns 0 only when running and answering.
status_server() {
  local s="$1" pid out
  load_instance "$s"
  local where="$I_ADDR:$I_PORT"
  if pid="$(server_pid "$s")"; then
    if out="$(ready "$s")"; then
      say "$s: running, ready (pid $pid, $where, RSS $(rss_mib "$pid"), $out)"
      return 0
    fi
    say "$s: running, not answering yet (pid $pid, $where, RSS $(rss_mib "$pid"))"
    return 1
  fi
  if [ -f "$(sdir "$s")/pid" ]; then
    say "$s: stopped: it died or was killed (stale pid file; see $LOCAL_DIR/logs $s)"
  else
    say "$s: stopped"
  fi
  probe port-free "$where" >/dev/null || say "  note: $where is in use by another process"
  return 1
}

# shellcheck source=lib-config.sh
source "$LOCAL_DIR/lib-config.sh"
# shellcheck source=lib-secure.sh
source "$LOCAL_DIR/lib-secure.sh"
