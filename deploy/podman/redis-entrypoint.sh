#!/bin/sh
# What the official image's docker-entrypoint.sh does for compose's command: started as
# root, it hands /data to the redis user and runs the server as that user.
set -e
if [ "${1#-}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  chown -R redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
