#!/usr/bin/env bash
# Throughput of a request carrying a valid MFA session, as a ratio to the
# same Caddy serving the same response without mfa, measured in one run.
#
# One Caddy process (built from ./cmd/caddy) serves two sites that differ
# only by the mfa handler. The script signs in once through the HTTP
# contract, then loads both sites with wrk in alternating rounds.
#
# Needs: go, curl, wrk (apt-get install -y wrk); redis-server for the
# redis store.
# Usage: bench/load.sh [rounds] [seconds-per-round] [connections] [store]
# where store is badger (the default) or redis: the script then starts a
# redis-server on 127.0.0.1:9103 (AOF on, appendfsync everysec, as the
# README asks of a deployment) and the mfa site keeps its state there.
# The last line's ratio is mfa throughput over plain throughput, summed
# over all rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-5}
conns=${3:-32}
store=${4:-badger}
tools="curl wrk"
case $store in
badger) ;;
redis) tools="$tools redis-server redis-cli" ;;
*) echo "store: badger or redis" >&2; exit 2 ;;
esac
for tool in $tools; do
	command -v "$tool" >/dev/null || { echo "bench/load.sh needs $tool" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'kill "${caddy_pid:-0}" "${redis_pid:-0}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/caddy" ./cmd/caddy
storage="badger $work/mfa"
if [ "$store" = redis ]; then
	redis-server --bind 127.0.0.1 --port 9103 --dir "$work" --save '' \
		--appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
		--logfile "$work/redis.log" &
	redis_pid=$!
	for _ in $(seq 100); do [ "$(redis-cli -p 9103 ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
	storage="redis redis://127.0.0.1:9103"
fi

cat >"$work/Caddyfile" <<CADDY
{
	admin off
	auto_https off
	log {
		level ERROR
	}
}
:9101 {
	respond "ok"
}
:9102 {
	mfa {
		user ""
		allow_emails *@example.com
		storage $storage
		email {
			outbox $work/mailbox
		}
	}
	respond "ok"
}
CADDY
"$work/caddy" run --config "$work/Caddyfile" >"$work/caddy.log" 2>&1 &
caddy_pid=$!
for _ in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:9101/ && break; sleep 0.1; done

# Sign in: identify, read the code from the outbox, verify.
jar="$work/jar"
base=http://127.0.0.1:9102/.mfa
csrf=$(curl -fs -c "$jar" -b "$jar" -H 'Accept: application/json' "$base/" | sed -n 's/.*"csrf_token":"\([^"]*\)".*/\1/p')
curl -fs -c "$jar" -b "$jar" -H 'Accept: application/json' -H 'Content-Type: application/json' \
	-d "{\"username\":\"bench@example.com\",\"csrf_token\":\"$csrf\"}" "$base/identify" >/dev/null
for _ in $(seq 100); do ls "$work"/mailbox/*.eml >/dev/null 2>&1 && break; sleep 0.1; done
code=$(grep -ohE '\b[0-9]{6}\b' "$work"/mailbox/*.eml | head -1)
csrf=$(curl -fs -c "$jar" -b "$jar" -H 'Accept: application/json' "$base/" | sed -n 's/.*"csrf_token":"\([^"]*\)".*/\1/p')
curl -fs -c "$jar" -b "$jar" -H 'Accept: application/json' -H 'Content-Type: application/json' \
	-d "{\"method\":\"email\",\"code\":\"$code\",\"csrf_token\":\"$csrf\"}" "$base/verify" >/dev/null
session=$(awk '$6 ~ /^mfa_session-/ {print $6 "=" $7}' "$jar")
[ -n "$session" ] || { echo "sign-in failed" >&2; cat "$work/caddy.log" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $session" http://127.0.0.1:9102/)" = 200 ] || { echo "session rejected" >&2; exit 1; }

# cpu_ticks prints the CPU time Caddy has used so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$caddy_pid/stat"; }

# run loads one site and prints "<requests/s> <CPU ticks per 10k requests>".
run() {
	local before after out
	before=$(cpu_ticks)
	out=$(wrk -t2 -c"$conns" -d"${secs}s" -H "Cookie: $session" "$1")
	after=$(cpu_ticks)
	awk -v b="$before" -v a="$after" '
		/Requests\/sec/ {rps = $2}
		/requests in/ {n = $1}
		END {printf "%s %.2f\n", rps, (a - b) * 10000 / n}' <<<"$out"
}
run http://127.0.0.1:9101/ >/dev/null # warm-up
run http://127.0.0.1:9102/ >/dev/null

# Rounds alternate which site goes first (ABBA), so a drift of the
# machine's speed during the run does not favour either side. Besides
# throughput, each run records the CPU time Caddy spent per request,
# which other tenants of the machine disturb much less.
printf 'round  plain_rps  mfa_rps  ratio  plain_cpu  mfa_cpu  cpu_ratio\n'
for r in $(seq "$rounds"); do
	if [ $((r % 2)) -eq 1 ]; then
		read -r p pc < <(run http://127.0.0.1:9101/)
		read -r m mc < <(run http://127.0.0.1:9102/)
	else
		read -r m mc < <(run http://127.0.0.1:9102/)
		read -r p pc < <(run http://127.0.0.1:9101/)
	fi
	echo "$r $p $m $pc $mc" >>"$work/rounds"
	awk -v r="$r" -v p="$p" -v m="$m" -v pc="$pc" -v mc="$mc" \
		'BEGIN {printf "%5d  %9.0f  %7.0f  %5.3f  %9.2f  %7.2f  %9.3f\n", r, p, m, m / p, pc, mc, pc / mc}'
done
awk '{p += $2; m += $3; pc += $4; mc += $5; n++}
	END {printf "mean   %9.0f  %7.0f  %5.3f  %9.2f  %7.2f  %9.3f\n", p / n, m / n, m / p, pc / n, mc / n, pc / mc}' "$work/rounds"
echo "(rps: requests per second; cpu: Caddy's CPU ticks per 10,000 requests; ratios are mfa over plain for rps, plain over mfa for cpu)"
