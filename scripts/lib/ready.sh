# Sourced by the load scripts. wait_ready PID LOG URL: returns once URL answers 200; if
# the server PID exits first, prints its LOG and exits 1.
wait_ready() {
  until curl -fs "$3" > /dev/null 2>&1; do
    kill -0 "$1" 2> /dev/null || { cat "$2"; exit 1; }
    sleep 0.005
  done
}
