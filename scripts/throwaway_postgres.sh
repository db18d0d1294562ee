#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on loopback for tests and benchmarks; print its URL.
#
#   scripts/throwaway_postgres.sh DIR [PORT]     # then: export SWARM_TEST_POSTGRES=<printed URL>
#   pg_ctl -D DIR/data stop                      # when done (or just delete DIR)
#
# Uses Debian's postgresql (apt-get install postgresql). initdb refuses to run as root, so as
# root the cluster runs as the `postgres` user the package creates. Trust auth, loopback only,
# socket in DIR: nothing outside this machine can reach it. The server keeps its default
# synchronous_commit=on (and swarm sets it on for its own sessions anyway): with off, a server
# crash lost confirmed reports and handed one epoch to two agents (issue #17).
set -euo pipefail
DIR=${1:?usage: throwaway_postgres.sh DIR [PORT]}
PORT=${2:-55432}
BIN=$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")")
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
as_owner "$BIN/initdb" -D "$DIR/data" -U swarm --auth=trust -E UTF8 --locale=C >"$DIR/initdb.log"
as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start -o \
  "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=300" \
  >/dev/null
as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U swarm swarm
echo "postgresql://swarm@127.0.0.1:$PORT/swarm"
