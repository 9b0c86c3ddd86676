# Spark backend tests (tests/backends/test_spark.py): pyspark from PyPI through the `spark`
# extra, and a Java 17 runtime (present on the CI image; installed here if missing).
# Sourced by .ci/run as root on Debian 12; installs into the project's .venv.
if ! command -v java >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi
java -version 2>&1 | head -1
"$(pwd)/.venv/bin/python" -m pip install -q -e ".[spark]"
