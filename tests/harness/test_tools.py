"""What a skipped end-to-end test tells a person: the programs missing and how to install them,
with packages that CI's own install step installs."""

from __future__ import annotations

import re

from crev.server import PROJECT_ROOT
from rig.tools import APT_PACKAGES, missing_programs


def ci_apt_packages() -> set[str]:
    run = (PROJECT_ROOT / ".ci" / "run").read_text()
    listed = re.search(r"^apt_packages=\(([^)]*)\)", run, re.MULTILINE)
    assert listed, ".ci/run no longer lists its apt packages as apt_packages=(...)"
    extra = (PROJECT_ROOT / ".ci" / "apt-packages").read_text().splitlines()
    return {*listed.group(1).split(), *(line for line in extra if line and line[0] != "#")}


def test_every_package_a_skip_names_is_one_ci_installs() -> None:
    assert set(APT_PACKAGES.values()) <= ci_apt_packages()


def test_a_missing_program_is_named_with_its_install_command() -> None:
    assert missing_programs(["chromium"]) == (
        "chromium not installed: apt-get install chromium (CI installs it)"
    )
    assert missing_programs(["dockerd", "docker", "busybox"]) == (
        "dockerd, docker, busybox not installed: apt-get install docker.io busybox-static "
        "(CI installs it)"
    )
