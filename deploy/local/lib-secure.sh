# shellcheck shell=bash
# The secure topology's material and set-up (throwaway CA, keystores, passwords, SCRAM
# users, ACLs, Cassandra roles) and the client env files of the secure and multi-node
# topologies. Sourced by lib.sh, never run.

# ---------------------------------------------------------------------- secure material
# Generated once per servers home, on the first start of a secure server: a throwaway CA,
# one key pair per server kind signed by it (valid for 127.0.0.1..9 and localhost), PKCS12
# keystores, a truststore, random passwords, and the env files of the clients.
#
# Identities by duty (README "Least privilege"): the super users (the local scripts and
# tests' clean-up), init (topics, keyspace, grants), worker, reader (rankers, watch),
# eraser (forget) and producer. `up` creates them and init's own rights; `interest-stream
# init`, run as init, grants the others theirs on the topics and tables it makes.
KAFKA_ADMIN_USER="admin"
KAFKA_INIT_USER="interest-stream-init"
KAFKA_WORKER_USER="interest-stream-worker"
KAFKA_READER_USER="profile-reader"
KAFKA_ERASER_USER="interest-stream-eraser"
KAFKA_PRODUCER_USER="interest-stream-producer"
CASSANDRA_ADMIN_ROLE="admin"
CASSANDRA_INIT_ROLE="interest_stream_init"
CASSANDRA_WORKER_ROLE="interest_stream_worker"
CASSANDRA_READER_ROLE="profile_reader"
CASSANDRA_ERASER_ROLE="interest_stream_eraser"
SECURE_PASSWORD_VARS=(STORE_PASSWORD
  KAFKA_ADMIN_PASSWORD KAFKA_INIT_PASSWORD KAFKA_WORKER_PASSWORD KAFKA_READER_PASSWORD
  KAFKA_ERASER_PASSWORD KAFKA_PRODUCER_PASSWORD
  CASSANDRA_ADMIN_PASSWORD CASSANDRA_INIT_PASSWORD CASSANDRA_WORKER_PASSWORD
  CASSANDRA_READER_PASSWORD CASSANDRA_ERASER_PASSWORD)

ensure_secure_material() {
  command -v openssl >/dev/null 2>&1 || die "openssl not found: it makes the secure servers' throwaway CA"
  command -v keytool >/dev/null 2>&1 || die "keytool (JDK) not found: it makes the secure servers' truststore"
  if [ -s "$SECURE_DIR/passwords" ] && ! grep -q '^KAFKA_WORKER_PASSWORD=' "$SECURE_DIR/passwords"; then
    # made before the identities by duty: Kafka's SCRAM users are fixed at formatting
    local d
    for d in kafka-secure cassandra-secure; do
      [ -d "$(sdir "$d")/data" ] || continue
      die "$d has data made for the earlier users (one application user): $LOCAL_DIR/down --purge --secure, then up again"
    done
    rm -f "$SECURE_DIR/passwords"
  fi
  if [ ! -s "$SECURE_DIR/passwords" ]; then
    # new passwords would not open data made with the old ones (SCRAM users, roles)
    local s
    for s in kafka-secure cassandra-secure; do
      [ -d "$(sdir "$s")/data" ] || continue
      die "$s has data in $(sdir "$s") but its passwords ($SECURE_DIR/passwords) are gone: $LOCAL_DIR/down --purge --secure, then up again"
    done
  fi
  mkdir -p "$SECURE_DIR"
  chmod 700 "$SECURE_DIR"
  (
    umask 077
    cd "$SECURE_DIR" || exit 1
    if [ ! -s passwords ]; then
      local v
      for v in "${SECURE_PASSWORD_VARS[@]}"; do
        echo "$v=$(openssl rand -hex 16)"
      done >passwords.tmp
      mv passwords.tmp passwords
    fi
    # shellcheck disable=SC1091
    source ./passwords
    export STORE_PASSWORD
    if [ ! -s ca.pem ] || [ ! -s truststore.p12 ] || [ ! -s kafka.p12 ] || [ ! -s cassandra.p12 ]; then
      say "secure: making a throwaway CA and keystores in $SECURE_DIR"
      local log="$SECURE_DIR/openssl.log"
      {
        openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 825 -keyout ca.key -out ca.pem \
          -subj "/CN=interest-stream local CA $(date +%F)" \
          -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        local kind cn
        for kind in kafka cassandra; do
          cn="kafka-broker"
          [ "$kind" = cassandra ] && cn="cassandra-node"
          openssl req -newkey rsa:2048 -sha256 -nodes -keyout "$kind.key" -out "$kind.csr" -subj "/CN=$cn"
          printf '%s\n' \
            "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4,IP:127.0.0.5,IP:127.0.0.6,IP:127.0.0.7,IP:127.0.0.8,IP:127.0.0.9,DNS:localhost" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth,clientAuth" >"$kind.ext"
          openssl x509 -req -sha256 -days 825 -in "$kind.csr" -CA ca.pem -CAkey ca.key \
            -CAcreateserial -extfile "$kind.ext" -out "$kind.crt"
          openssl pkcs12 -export -name "$cn" -inkey "$kind.key" -in "$kind.crt" -certfile ca.pem \
            -passout env:STORE_PASSWORD -out "$kind.p12"
          rm -f "$kind.csr" "$kind.ext"
        done
        rm -f truststore.p12
        keytool -importcert -noprompt -alias local-ca -file ca.pem -storetype PKCS12 \
          -keystore truststore.p12 -storepass:env STORE_PASSWORD
      } >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "secure: making the CA and keystores failed (log: $log)"; }
      chmod 644 ca.pem
    fi
  )
  # shellcheck disable=SC1091
  source "$SECURE_DIR/passwords"
}

# The clients' env files (rewritten at every start: ports may change): one per identity,
# each a whole client configuration (`source secure/worker.env; interest-stream worker`),
# and credentials.env: the common part and the super users, for tests and local scripts.
write_credentials_env() {
  local ca="$SECURE_DIR/ca.pem" kafka cassandra common
  ensure_secure_material
  kafka="$(recorded_field kafka-secure I_ADDR):$(recorded_field kafka-secure I_PORT)"
  cassandra="$(recorded_field cassandra-secure I_ADDR):$(recorded_field cassandra-secure I_PORT)"
  common="# Generated by deploy/local/up --secure ($(date '+%F %T')) for the secure local servers
# under $SERVERS_HOME. Throwaway secrets for local use only; down --purge --secure deletes
# them. Use: source this file; interest-stream commands read the INTEREST_STREAM_* ones.
export INTEREST_STREAM_BROKERS=$kafka
export INTEREST_STREAM_KAFKA_SECURITY_PROTOCOL=SASL_SSL
export INTEREST_STREAM_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
export INTEREST_STREAM_KAFKA_SSL_CAFILE=$ca
export INTEREST_STREAM_STORE_URL=cassandra://$cassandra/interest_stream
export INTEREST_STREAM_CASSANDRA_SSL_CAFILE=$ca"
  (
    umask 077
    cd "$SECURE_DIR" || exit 1
    identity_env() { # name kafka-user kafka-password [cassandra-role cassandra-password]
      {
        echo "$common"
        echo "# identity: $1"
        echo "export INTEREST_STREAM_KAFKA_USERNAME=$2"
        echo "export INTEREST_STREAM_KAFKA_PASSWORD=$3"
        if [ -n "${4:-}" ]; then
          echo "export INTEREST_STREAM_CASSANDRA_USERNAME=$4"
          echo "export INTEREST_STREAM_CASSANDRA_PASSWORD=$5"
        fi
      } >"$1.env.tmp"
    }
    identity_env init "$KAFKA_INIT_USER" "$KAFKA_INIT_PASSWORD" "$CASSANDRA_INIT_ROLE" "$CASSANDRA_INIT_PASSWORD"
    cat >>init.env.tmp <<EOF
# the identities init grants their least privileges to
export INTEREST_STREAM_WORKER_KAFKA_USER=$KAFKA_WORKER_USER
export INTEREST_STREAM_READER_KAFKA_USER=$KAFKA_READER_USER
export INTEREST_STREAM_ERASER_KAFKA_USER=$KAFKA_ERASER_USER
export INTEREST_STREAM_PRODUCER_KAFKA_USER=$KAFKA_PRODUCER_USER
export INTEREST_STREAM_WORKER_CASSANDRA_ROLE=$CASSANDRA_WORKER_ROLE
export INTEREST_STREAM_READER_CASSANDRA_ROLE=$CASSANDRA_READER_ROLE
export INTEREST_STREAM_ERASER_CASSANDRA_ROLE=$CASSANDRA_ERASER_ROLE
EOF
    identity_env worker "$KAFKA_WORKER_USER" "$KAFKA_WORKER_PASSWORD" "$CASSANDRA_WORKER_ROLE" "$CASSANDRA_WORKER_PASSWORD"
    identity_env reader "$KAFKA_READER_USER" "$KAFKA_READER_PASSWORD" "$CASSANDRA_READER_ROLE" "$CASSANDRA_READER_PASSWORD"
    identity_env eraser "$KAFKA_ERASER_USER" "$KAFKA_ERASER_PASSWORD" "$CASSANDRA_ERASER_ROLE" "$CASSANDRA_ERASER_PASSWORD"
    identity_env producer "$KAFKA_PRODUCER_USER" "$KAFKA_PRODUCER_PASSWORD"
    {
      echo "$common"
      cat <<EOF
# No identity here: source init.env, worker.env, reader.env, eraser.env or producer.env
# beside this file for one. The super users, for the local scripts and tests' clean-up:
export LOCAL_SECURE_DIR=$SECURE_DIR
export LOCAL_SECURE_CAFILE=$ca
export LOCAL_KAFKA_SECURE_BOOTSTRAP=$kafka
export LOCAL_CASSANDRA_SECURE_CONTACT=$cassandra
export LOCAL_KAFKA_ADMIN_USER=$KAFKA_ADMIN_USER
export LOCAL_KAFKA_ADMIN_PASSWORD=$KAFKA_ADMIN_PASSWORD
export LOCAL_CASSANDRA_ADMIN_USER=$CASSANDRA_ADMIN_ROLE
export LOCAL_CASSANDRA_ADMIN_PASSWORD=$CASSANDRA_ADMIN_PASSWORD
EOF
    } >credentials.env.tmp
    local f
    for f in init worker reader eraser producer credentials; do mv "$f.env.tmp" "$f.env"; done
  )
}

# cluster.env of the multi-node topology: bootstrap servers and store URL for clients.
write_nodes_env() {
  local i b=() c=() kport cport nodes
  kport="$(recorded_field kafka-1 I_PORT)" cport="$(recorded_field cassandra-1 I_PORT)"
  nodes="$(recorded_field kafka-1 I_NODES)"
  for i in $(seq "$nodes"); do b+=("127.0.0.$i:$kport"); c+=("127.0.0.$i"); done
  mkdir -p "$NODES_DIR"
  cat >"$NODES_DIR/cluster.env.tmp" <<EOF
# Generated by deploy/local/up --nodes $nodes ($(date '+%F %T')) for the multi-node
# local servers under $SERVERS_HOME. Use: source this file.
export INTEREST_STREAM_BROKERS=$(IFS=,; echo "${b[*]}")
export INTEREST_STREAM_STORE_URL=cassandra://$(IFS=,; echo "${c[*]}"):$cport/interest_stream
export INTEREST_STREAM_CASSANDRA_LOCAL_DC=dc1
export INTEREST_STREAM_REPLICATION_FACTOR=$([ "$nodes" -ge 3 ] && echo 3 || echo "$nodes")
export LOCAL_NODES=$nodes
EOF
  mv "$NODES_DIR/cluster.env.tmp" "$NODES_DIR/cluster.env"
}

# One cluster id for all the brokers of the multi-node topology (they are formatted apart).
nodes_cluster_id() {
  mkdir -p "$NODES_DIR"
  [ -s "$NODES_DIR/kafka-cluster-id" ] || probe kafka-cluster-id >"$NODES_DIR/kafka-cluster-id"
  cat "$NODES_DIR/kafka-cluster-id"
}

# A freshly started secure Cassandra node only knows the default superuser
# cassandra/cassandra (created at start-up). It is replaced by the admin role, and the
# application and read-only roles are created. Idempotent: later starts log in as admin.
CASSANDRA_DEFAULT_PASSWORD=cassandra
cql_as() { # role password [cql args...] < statements
  local role="$1" password="$2"; shift 2
  load_instance cassandra-secure
  PROBE_PASSWORD="$password" probe cql "$I_ADDR" "$I_PORT" --cafile "$SECURE_DIR/ca.pem" --user "$role" "$@"
}

secure_cassandra_setup() {
  ensure_secure_material
  local t0=$SECONDS out
  if ! cql_as "$CASSANDRA_ADMIN_ROLE" "$CASSANDRA_ADMIN_PASSWORD" </dev/null >/dev/null 2>&1; then
    # first start: wait for the default superuser, then replace it
    until out="$(cql_as cassandra "$CASSANDRA_DEFAULT_PASSWORD" </dev/null 2>&1)"; do
      if [ $((SECONDS - t0)) -ge 60 ]; then
        echo "error: cassandra-secure: neither $CASSANDRA_ADMIN_ROLE (from $SECURE_DIR/passwords) nor the default superuser can log in: $out" >&2
        echo "  if the passwords file was regenerated, the data no longer matches: $LOCAL_DIR/down --purge --secure" >&2
        return 1
      fi
      sleep 1
    done
    say "cassandra-secure: replacing the default superuser cassandra with role $CASSANDRA_ADMIN_ROLE"
    cql_as cassandra "$CASSANDRA_DEFAULT_PASSWORD" <<EOF || return 1
CREATE ROLE IF NOT EXISTS $CASSANDRA_ADMIN_ROLE WITH PASSWORD = '$CASSANDRA_ADMIN_PASSWORD' AND SUPERUSER = true AND LOGIN = true
EOF
    cql_as "$CASSANDRA_ADMIN_ROLE" "$CASSANDRA_ADMIN_PASSWORD" <<<"DROP ROLE IF EXISTS cassandra" || return 1
  fi
  # init creates its keyspaces (and so owns them, AUTHORIZE included): it then grants the
  # other roles their tables (`interest-stream init` with init.env)
  cql_as "$CASSANDRA_ADMIN_ROLE" "$CASSANDRA_ADMIN_PASSWORD" <<EOF || return 1
CREATE ROLE IF NOT EXISTS $CASSANDRA_INIT_ROLE WITH PASSWORD = '$CASSANDRA_INIT_PASSWORD' AND LOGIN = true
GRANT CREATE ON ALL KEYSPACES TO $CASSANDRA_INIT_ROLE
CREATE ROLE IF NOT EXISTS $CASSANDRA_WORKER_ROLE WITH PASSWORD = '$CASSANDRA_WORKER_PASSWORD' AND LOGIN = true
CREATE ROLE IF NOT EXISTS $CASSANDRA_READER_ROLE WITH PASSWORD = '$CASSANDRA_READER_PASSWORD' AND LOGIN = true
CREATE ROLE IF NOT EXISTS $CASSANDRA_ERASER_ROLE WITH PASSWORD = '$CASSANDRA_ERASER_PASSWORD' AND LOGIN = true
EOF
  say "cassandra-secure: roles $CASSANDRA_ADMIN_ROLE (superuser), $CASSANDRA_INIT_ROLE (creates keyspaces), $CASSANDRA_WORKER_ROLE, $CASSANDRA_READER_ROLE, $CASSANDRA_ERASER_ROLE (granted by init)"
}

# ACLs of the secure broker (idempotent: creating an existing ACL changes nothing): init's
# only. It creates topics and writes the other identities' ACLs, so it needs ALTER on the
# cluster, which lets it write any ACL: its credentials are an administrator's.
secure_kafka_setup() {
  ensure_secure_material
  load_instance kafka-secure
  PROBE_PASSWORD="$KAFKA_ADMIN_PASSWORD" probe kafka-acls "$I_ADDR" "$I_PORT" \
    --cafile "$SECURE_DIR/ca.pem" --user "$KAFKA_ADMIN_USER" <<EOF || return 1
User:$KAFKA_INIT_USER CLUSTER kafka-cluster CREATE
User:$KAFKA_INIT_USER CLUSTER kafka-cluster ALTER
User:$KAFKA_INIT_USER CLUSTER kafka-cluster DESCRIBE
User:$KAFKA_INIT_USER TOPIC * DESCRIBE
User:$KAFKA_INIT_USER TOPIC * DESCRIBE_CONFIGS
User:$KAFKA_INIT_USER TOPIC * ALTER_CONFIGS
EOF
  say "kafka-secure: SCRAM users $KAFKA_ADMIN_USER (super user), $KAFKA_INIT_USER (topics, ACLs), $KAFKA_WORKER_USER, $KAFKA_READER_USER, $KAFKA_ERASER_USER, $KAFKA_PRODUCER_USER (granted by init)"
}

# Writes the env files clients source for the topologies among the servers "$@".
write_client_env() {
  local s secure=0 nodes=0
  for s in "$@"; do
    case "$s" in
      *-secure) secure=1 ;;
      kafka-[1-9] | cassandra-[1-9]) nodes=1 ;;
    esac
  done
  [ $secure = 0 ] || write_credentials_env
  [ $nodes = 0 ] || write_nodes_env
}

# After `down --purge`: a topology's credentials and cluster id go with its last data.
purge_topology_files() {
  local everything="$1" s left
  left="$(ls "$RUN_DIR" 2>/dev/null || true)"
  if [ "$everything" = 1 ] || ! echo "$left" | grep -qx -e kafka-secure -e cassandra-secure; then
    if [ -d "$SECURE_DIR" ]; then rm -rf "$SECURE_DIR"; say "secure: CA, keystores and credentials deleted"; fi
  fi
  if [ "$everything" = 1 ] || ! echo "$left" | grep -qx -e 'kafka-[1-9]' -e 'cassandra-[1-9]'; then
    if [ -d "$NODES_DIR" ]; then rm -rf "$NODES_DIR"; say "nodes: cluster id and cluster.env deleted"; fi
  fi
  return 0
}

# The value of I_<field> of a server as last started (else as configured).
recorded_field() { (load_instance "$1"; echo "${!2}"); }
