#!/bin/sh
# Starts one bwc service in the container: BWC_SERVICE picks it, BWC_PORT overrides its port.
set -eu

case "${BWC_SERVICE:-}" in
  ingest)    default_port=8001 ;;
  catalog)   default_port=8002 ;;
  review)    default_port=8003 ;;
  retention) default_port=8004 ;;
  *)
    echo "bwc-entrypoint: set BWC_SERVICE to ingest, catalog, review or retention" >&2
    exit 64 ;;
esac

# exec: the server replaces the shell (PID 1 in the container) and receives SIGTERM directly;
# bwc.serve drains (BWC_SHUTDOWN_DRAIN) and then waits for open requests (BWC_SHUTDOWN_GRACE).
# Proxy headers are trusted from FORWARDED_ALLOW_IPS (uvicorn reads it; default 127.0.0.1).
exec python -m bwc.serve "${BWC_SERVICE}" --host 0.0.0.0 --port "${BWC_PORT:-$default_port}"
