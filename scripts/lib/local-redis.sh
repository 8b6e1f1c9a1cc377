# Shared by scripts/redis-cluster and scripts/redis-sentinel: the pieces of a throwaway
# local Redis deployment that live in one directory, one subdirectory per process.
# Sourced, not run.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_ping() {
  for _ in $(seq 1 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "local redis: nothing answers on port $1" >&2; return 1
}

# Stops every process that has a pidfile under DIR and removes DIR. A daemonized
# redis-server leads its own process group, and the children it forks (an AOF rewrite, an
# RDB for a replica) write into DIR too, so the whole group is signalled and waited for
# before the directory goes; otherwise a child still writing races the removal.
stop_dir() {
  local dir="$1" pids=() pidfile pid
  [ -d "$dir" ] || return 0
  for pidfile in "$dir"/*/redis.pid; do
    [ -f "$pidfile" ] && pids+=("$(cat "$pidfile")")
  done
  signal_all() { for pid in "${pids[@]}"; do kill "$1" -- "-$pid" 2>/dev/null || kill "$1" "$pid" 2>/dev/null || true; done; }
  any_alive() { for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
  if [ "${#pids[@]}" -gt 0 ]; then
    signal_all -TERM
    for _ in $(seq 1 30); do any_alive || break; sleep 0.1; done
    signal_all -KILL
    for _ in $(seq 1 50); do any_alive || break; sleep 0.1; done
  fi
  for _ in $(seq 1 20); do
    rm -rf "$dir" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "local redis: could not remove $dir; something still writes into it" >&2
  return 0
}
