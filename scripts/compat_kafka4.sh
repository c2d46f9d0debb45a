#!/usr/bin/env bash
# Runs the Kafka round trip (tests/integration/test_stack_roundtrip.py) against a
# Kafka 4.x broker instead of the pinned 3.9.1, to fill README's compatibility table.
# Usage: bash scripts/compat_kafka4.sh [4.1.0]
set -euo pipefail
cd "$(dirname "$0")/.."
V=${1:-4.1.0}
HOME4=${KMEVENTS_KAFKA4_HOME:-$HOME/.kmevents/kafka-$V}
if [[ ! -f "$HOME4/libs/.complete" ]]; then
  mkdir -p "$HOME4/libs"
  sed "s#<kafka.version>[^<]*</kafka.version>#<kafka.version>$V</kafka.version>#; s#slf4j-reload4j</artifactId>#slf4j-simple</artifactId>#; s#<version>1.7.36</version>#<version>2.0.16</version>#" \
    kmevents/stack/pom.xml > "$HOME4/pom.xml"
  mvn -q -B -f "$HOME4/pom.xml" dependency:copy-dependencies -DoutputDirectory="$HOME4/libs" -DincludeScope=runtime
  touch "$HOME4/libs/.complete"
fi
KMEVENTS_STACK__KAFKA_HOME="$HOME4" .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/integration/test_stack_roundtrip.py "${@:2}"
