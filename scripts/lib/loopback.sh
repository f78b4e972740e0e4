# shellcheck shell=bash
# Loopback helpers of the scripts that start services (test-env.sh, loadtest.sh, soak.sh). The caller sets
# ROOT (the checkout, whose .venv has Python) and LOGS (the folder of each service's <name>.log); messages
# start with the calling script's name.

free_port() { "$ROOT/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # seconds name problem command...: until the command succeeds; else "<name> <problem>" and its log
  local deadline=$((SECONDS + $1)) name=$2 problem=$3
  shift 3
  until "$@" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      echo "$(basename "$0" .sh): $name $problem (log: $LOGS/$name.log)" >&2
      tail -n 20 "$LOGS/$name.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

wait_port() { # host port seconds name
  wait_for "$3" "$4" "did not open $1:$2 within $3 s" \
    "$ROOT/.venv/bin/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('$1',$2)))"
}

wait_ready() { # url seconds name: until the URL answers 2xx
  wait_for "$2" "$3" "not ready at $1 within $2 s" curl -fsS -o /dev/null "$1"
}
