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

# Sends signal $1 to each process group in $2.. (a daemonized redis-server leads its own,
# with the children it forks: an AOF rewrite, an RDB for a replica), or to the process
# alone when it leads none.
signal_groups() {
  local sig="$1" pid; shift
  for pid in "$@"; do
    kill "$sig" -- "-$pid" 2>/dev/null || kill "$sig" "$pid" 2>/dev/null || true
  done
}

# True while a process of any group in $@ is alive.
any_group_alive() {
  local pid
  for pid in "$@"; do
    kill -0 -- "-$pid" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null && return 0
  done
  return 1
}

# Stops every redis-server that has a pidfile under DIR, with the children it forked, and
# removes DIR. Those children write into DIR too, so the directory goes only once every
# group has exited; otherwise a child still writing races the removal. A pidfile whose
# process is gone or is no longer a redis-server (a node a test killed, its pid reused) is
# left alone.
stop_dir() {
  local dir="$1" pids=() pidfile pid
  [ -d "$dir" ] || return 0
  for pidfile in "$dir"/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
      redis-server* | redis-sentinel*) pids+=("$pid") ;;
    esac
  done
  if [ "${#pids[@]}" -gt 0 ]; then
    signal_groups -TERM "${pids[@]}"
    for _ in $(seq 1 30); do any_group_alive "${pids[@]}" || break; sleep 0.1; done
    signal_groups -KILL "${pids[@]}"
    for _ in $(seq 1 50); do any_group_alive "${pids[@]}" || break; sleep 0.1; done
  fi
  for _ in $(seq 1 20); do
    rm -rf "$dir" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "local redis: could not remove $dir; something still writes into it" >&2
  return 0
}
