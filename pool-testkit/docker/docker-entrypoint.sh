#!/bin/sh
# Entry point honouring the official postgres image's contract, in POSIX sh
# so the image needs no bash:
#   - a first argument starting with '-' means `postgres` is prepended;
#   - as root: prepare $PGDATA and re-exec as the postgres user;
#   - on an empty $PGDATA: initdb with POSTGRES_USER (default postgres),
#     POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
#     POSTGRES_INITDB_ARGS; `host all all all <method>` in pg_hba.conf;
#     a temporary socket-only server (its "ready to accept connections" line
#     goes to stdout) creates POSTGRES_DB and runs
#     /docker-entrypoint-initdb.d/*.sh|*.sql, then stops;
#   - exec postgres (its ready line goes to stderr).
set -eu

if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    POSTGRES_USER="${POSTGRES_USER:-postgres}"
    POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
    POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-}"
    POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-}"
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.
MSG
        exit 1
    fi
    if [ -z "$POSTGRES_HOST_AUTH_METHOD" ]; then
        POSTGRES_HOST_AUTH_METHOD=scram-sha-256
    fi

    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    pwfile=/tmp/pwfile.$$
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    # shellcheck disable=SC2086 # word splitting of POSTGRES_INITDB_ARGS is the contract
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"

    PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD" \
        pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
    psql_() { PGPASSWORD="$POSTGRES_PASSWORD" psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" "$@"; }
    if [ "$POSTGRES_DB" != postgres ]; then
        psql_ --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db" ;
SQL
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "$0: running $f"; . "$f" ;;
            *.sql) echo "$0: running $f"; psql_ --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "$0: running $f"; gzip -dc "$f" | psql_ --dbname "$POSTGRES_DB" ;;
            *) if [ -e "$f" ]; then echo "$0: ignoring $f"; fi ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo
    echo 'PostgreSQL init process complete; ready for start up.'
    echo
fi

exec "$@"
