#!/bin/bash
# HEALTHCHECK of the cnnd image: GET /v2/health/ready on the container's own inference port
# through bash's /dev/tcp (the slim image has no curl); exit 0 only on an HTTP 200.
port=${CNND_PORT:-8080}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /v2/health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 2 status <&3 || exit 1
case $status in
  "HTTP/1."?" 200 "*) exit 0 ;;
esac
echo "cnnd-healthcheck: ${status%$'\r'}" >&2
exit 1
