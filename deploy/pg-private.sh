#!/usr/bin/env bash
# A private PostgreSQL 15 server in a directory of its own, on a loopback port: for the tests,
# the benchmarks and the quickstart. PostgreSQL refuses to run as root; as root the server runs
# as the `postgres` system user (or $PLUGMON_PG_USER), otherwise as the calling user.
#
#   deploy/pg-private.sh start DIR [PORT]   initdb on first use, start, create database plugmon;
#                                           prints the connection URL (PORT 0 or absent: a free one)
#   deploy/pg-private.sh stop DIR [MODE]    pg_ctl stop -m MODE (fast | immediate; default fast)
#   deploy/pg-private.sh restart DIR        start again on the port it had
#   deploy/pg-private.sh url DIR            prints the connection URL
#   deploy/pg-private.sh psql DIR [ARGS]    psql against it
#   deploy/pg-private.sh destroy DIR        stop (immediate) and remove DIR
#
# The role `plugmon` is the superuser; it has a random password (DIR/password) and host
# connections use scram-sha-256, so the password really travels in the URL. Log: DIR/log/server.log.
# Environment: PG_BINDIR (default /usr/lib/postgresql/15/bin), PLUGMON_PG_USER.
set -euo pipefail

bindir=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
die() { echo "pg-private: $*" >&2; exit 1; }
usage() { sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2; }

(($# >= 2)) || usage
cmd=$1
dir=$2
shift 2
[[ -x $bindir/pg_ctl ]] || die "no PostgreSQL server in $bindir (install the postgresql package, or set PG_BINDIR)"

if ((EUID == 0)); then
    user=${PLUGMON_PG_USER:-postgres}
    id "$user" >/dev/null 2>&1 || user=nobody
    as_user() { runuser -u "$user" -- "$@"; }
else
    user=$(id -un)
    as_user() { "$@"; }
fi

data=$dir/data
sock=$dir/sock
log=$dir/log/server.log

url() {
    local port
    port=$(cat "$dir/port")
    printf 'postgresql://plugmon:%s@127.0.0.1:%s/plugmon?sslmode=disable\n' \
        "$(cat "$dir/password")" "$port"
}

# Starts the server on port $1; returns 1 (without dying) when it did not come up.
start_on() {
    local port=$1
    echo "$port" >"$dir/port"
    local before=0
    [[ -f $log ]] && before=$(wc -l <"$log")
    if ! as_user "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 \
        -o "-p $port -k $sock -c listen_addresses=127.0.0.1" start >/dev/null; then
        tail -n +"$((before + 1))" "$log" | grep -q 'could not bind\|already in use' ||
            die "the server did not start; see $log"
        return 1
    fi
}

is_running() {
    [[ -f $data/postmaster.pid ]] && as_user "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

case $cmd in
    start)
        want_port=${1:-0}
        mkdir -p "$dir"
        dir=$(cd "$dir" && pwd)
        data=$dir/data
        sock=$dir/sock
        log=$dir/log/server.log
        if ((EUID == 0)); then
            # The server user must reach DIR: every ancestor needs search permission for it.
            chmod 0711 "$dir"
            runuser -u "$user" -- test -x "$dir" ||
                die "user $user cannot enter $dir: give its parent directories o+x"
        fi
        if [[ ! -f $data/PG_VERSION ]]; then
            head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dir/password"
            mkdir -p "$data" "$sock" "$dir/log"
            chmod 0700 "$data"
            [[ $user == "$(id -un)" ]] || chown "$user" "$data" "$sock" "$dir/log"
            pwfile=$(mktemp)
            cat "$dir/password" >"$pwfile"
            [[ $user == "$(id -un)" ]] || chown "$user" "$pwfile"
            if ! as_user "$bindir/initdb" -D "$data" -U plugmon --pwfile="$pwfile" \
                --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
                >"$dir/initdb.log" 2>&1; then
                rm -f "$pwfile"
                die "initdb failed; see $dir/initdb.log"
            fi
            rm -f "$pwfile"
            cat >>"$data/postgresql.conf" <<EOF
# pg-private.sh
max_connections = 40
shared_buffers = 64MB
log_min_messages = warning
log_line_prefix = '%m [%p] '
EOF
        fi
        is_running && die "already running in $dir ($(url | sed 's/:[^:@]*@/:***@/'))"
        started=0
        for attempt in 1 2 3 4 5 6 7 8; do
            port=$want_port
            ((port != 0)) || port=$((20000 + (RANDOM * 32768 + RANDOM) % 30000))
            if start_on "$port"; then
                started=1
                break
            fi
            ((want_port == 0)) || break
            echo "pg-private: port $port busy? retrying ($attempt)" >&2
        done
        ((started)) || die "could not start the server; see $log"
        if ! as_user "$bindir/psql" -h "$sock" -p "$(cat "$dir/port")" -U plugmon -d postgres \
            -Atqc "SELECT 1 FROM pg_database WHERE datname = 'plugmon'" | grep -q 1; then
            as_user "$bindir/createdb" -h "$sock" -p "$(cat "$dir/port")" -U plugmon plugmon
        fi
        url
        ;;
    restart)
        [[ -f $dir/port ]] || die "$dir holds no server (start it first)"
        is_running && die "already running in $dir"
        start_on "$(cat "$dir/port")" || die "could not restart; see $log"
        url
        ;;
    stop)
        mode=${1:-fast}
        [[ $mode == fast || $mode == immediate || $mode == smart ]] || die "unknown stop mode: $mode"
        if is_running; then
            as_user "$bindir/pg_ctl" -D "$data" -m "$mode" -w -t 60 stop >/dev/null
        fi
        ;;
    url)
        [[ -f $dir/port ]] || die "$dir holds no server"
        url
        ;;
    psql)
        [[ -f $dir/port ]] || die "$dir holds no server"
        as_user "$bindir/psql" -h "$sock" -p "$(cat "$dir/port")" -U plugmon -d plugmon "$@"
        ;;
    destroy)
        if [[ -d $data ]] && is_running; then
            as_user "$bindir/pg_ctl" -D "$data" -m immediate -w -t 60 stop >/dev/null || true
        fi
        rm -rf "$dir"
        ;;
    *) usage ;;
esac
