# Sourced by .ci/run (as root, fresh Debian 12): installs the `serve` extra (FastAPI, SQLAlchemy,
# Alembic, psycopg, ...) and a local PostgreSQL server for tests/serve, then exports
# LLMCF_TEST_POSTGRES_URL. Safe to source again: every step checks what is already there.
# Locally: `sudo bash -c '. .ci/setup.d/20-postgres.sh'` then export the printed URL.
_llmcf_root="$(pwd)"
"$_llmcf_root/.venv/bin/python" -m pip install -q -e "$_llmcf_root[serve]"

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
_llmcf_pg_version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk '{print $2}' | grep -qx main; then
  pg_createcluster "$_llmcf_pg_version" main >/dev/null
fi
_llmcf_pg_version="$(pg_lsclusters -h | awk '$2 == "main" {print $1; exit}')"
_llmcf_pg_port="$(pg_lsclusters -h | awk '$2 == "main" {print $3; exit}')"
if ! pg_lsclusters -h | awk '$2 == "main" {print $4}' | grep -qx online; then
  pg_ctlcluster "$_llmcf_pg_version" main start
fi
runuser -u postgres -- psql -q -p "$_llmcf_pg_port" -v ON_ERROR_STOP=1 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'llmcf') THEN
    CREATE ROLE llmcf LOGIN PASSWORD 'llmcf' CREATEDB;
  END IF;
END $$;
SQL
if ! runuser -u postgres -- psql -p "$_llmcf_pg_port" -tAc "SELECT 1 FROM pg_database WHERE datname = 'llmcf_test'" | grep -qx 1; then
  runuser -u postgres -- createdb -p "$_llmcf_pg_port" -O llmcf llmcf_test
fi
export LLMCF_TEST_POSTGRES_URL="postgresql+psycopg://llmcf:llmcf@127.0.0.1:${_llmcf_pg_port}/llmcf_test"
echo "LLMCF_TEST_POSTGRES_URL=$LLMCF_TEST_POSTGRES_URL"
unset _llmcf_root _llmcf_pg_version _llmcf_pg_port
