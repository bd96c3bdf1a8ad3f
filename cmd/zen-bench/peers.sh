#!/usr/bin/env bash
# Measure zend's eventloop engine against redis and memcached with the same
# generator (zen-bench), on this machine, loopback only.
#
#   cmd/zen-bench/peers.sh [DURATION]        (default 5s per run)
#
# Needs Go, redis-server and memcached (apt-get install redis-server
# memcached). Each server gets the same scenarios; redis answers PING with
# +PONG, memcached "version"; zend the Zen questions. Every reply is
# verified. Prints one line per server and scenario, then a summary.
set -euo pipefail
d=${1:-5s}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
(cd "$top" && CGO_ENABLED=0 go build -o "$tmp/" ./cmd/zend ./cmd/zen-bench)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { i=0; until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do i=$((i+1)); [ $i -gt 200 ] && { echo "port $1 not up" >&2; exit 1; }; sleep 0.05; done; }

zp=$(free_port); rp=$(free_port); mp=$(free_port)
: >"$tmp/zend.toml"
"$tmp/zend" -c "$tmp/zend.toml" -listen "127.0.0.1:$zp" -engine eventloop -set log.level=warn -set limits.max_connections=30000 run &
zpid=$!; pids="$pids $zpid"
redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no --maxclients 20000 --loglevel warning &
rpid=$!; pids="$pids $rpid"
memcached -u nobody -l 127.0.0.1 -p "$mp" -U 0 -t 2 -c 20000 &
mpid=$!; pids="$pids $mpid"
wait_port "$zp"; wait_port "$rp"; wait_port "$mp"

bench() { "$tmp/zen-bench" -d "$d" "$@"; }
mcver=$(printf 'version\r\n' | timeout 2 nc -q1 127.0.0.1 "$mp" | tr -d '\r' | cut -d' ' -f2)
for server in zend redis memcached; do
	case $server in
	zend) a=(-addr "127.0.0.1:$zp" -pid "$zpid") ;;
	redis) a=(-addr "127.0.0.1:$rp" -pid "$rpid" -req 'PING\r\n' -resp '+PONG\r\n') ;;
	memcached) a=(-addr "127.0.0.1:$mp" -pid "$mpid" -req 'version\r\n' -resp "VERSION $mcver\\r\\n") ;;
	esac
	echo "== $server"
	# idle first: memory is measured on a server no other run has grown
	bench "${a[@]}" -mode idle -idle 19000
	bench "${a[@]}" -c 50 -pipeline 16
	bench "${a[@]}" -c 50 -pipeline 1
	bench "${a[@]}" -mode conn -c 8
done
