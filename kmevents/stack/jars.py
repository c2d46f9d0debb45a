"""Kafka's jars, resolved with Maven from the pom kept in this package.

``mvn dependency:copy-dependencies`` copies ``kafka_2.13`` and its runtime
dependencies into ``<jar_cache>/<kafka version>/``; a ``.complete`` marker makes
the cache safe against an interrupted download. ``KAFKA_HOME`` (an existing
Kafka install) is used instead when set.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from kmevents.errors import EnvironmentProblem

POM = resources.files("kmevents.stack") / "pom.xml"


def kafka_version() -> str:
    m = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    assert m, "pom.xml must pin kafka.version"
    return m.group(1)


def classpath(jar_cache: Path, kafka_home: Path | None) -> str:
    """The Java classpath for the broker, resolving the jars first if needed."""
    if kafka_home is not None:
        libs = kafka_home / "libs"
        if not libs.is_dir():
            raise EnvironmentProblem(
                f"KAFKA_HOME={kafka_home} has no libs/ folder",
                hint="point KAFKA_HOME at an unpacked Kafka 3.9 distribution, or unset it to use Maven",
            )
        return f"{libs}/*"
    return f"{resolve(jar_cache)}/*"


def resolve(jar_cache: Path) -> Path:
    target = jar_cache / kafka_version()
    if (target / ".complete").exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EnvironmentProblem(
            "Maven (mvn) is not installed: it is needed once to fetch Kafka's jars",
            hint="install Maven (apt-get install maven), or set KAFKA_HOME to an existing Kafka 3.9 install",
        )
    target.mkdir(parents=True, exist_ok=True)
    pom_copy = target / "pom.xml"
    pom_copy.write_text(POM.read_text())
    proc = subprocess.run(  # noqa: S603
        [mvn, "-q", "-B", "-f", str(pom_copy), "dependency:copy-dependencies",
         f"-DoutputDirectory={target}", "-DincludeScope=runtime"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not list(target.glob("kafka_2.13-*.jar")):
        raise EnvironmentProblem(
            "Maven could not fetch Kafka's jars:\n" + (proc.stdout + proc.stderr)[-2000:],
            hint="check access to Maven Central (or your mirror in ~/.m2/settings.xml), "
            "or set KAFKA_HOME to an existing Kafka 3.9 install",
        )
    (target / ".complete").write_text(kafka_version())
    return target


def java() -> str:
    exe = shutil.which("java")
    if exe is None:
        raise EnvironmentProblem(
            "Java is not installed: the Kafka broker needs Java 17",
            hint="install it (apt-get install openjdk-17-jre-headless) or put java on PATH",
        )
    return exe
