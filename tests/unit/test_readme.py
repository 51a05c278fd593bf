"""The README's facts that code can check: the Vercel CLI it pins, the "Deploy with Vercel"
button's settings, and the settings table, against the project's own files and crev/config.py."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from crev.config import read_settings
from crev.server import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()
# Settings Vercel's builder reads, not crev.
BUILDER_SETTINGS = {"VERCEL_PYTHON_COMPILEALL"}


def pinned_cli() -> str:
    package = json.loads((PROJECT_ROOT / "tests" / "vercel-cli" / "package.json").read_text())
    return package["dependencies"]["vercel"]


def test_the_install_line_installs_the_cli_the_tests_run_as_ci_installs_it() -> None:
    # A global `npm i -g vercel@VERSION` ignores the override in tests/vercel-cli that makes
    # the pinned version installable at all: the README installs from that pin, as CI does.
    assert "npm i -g" not in README
    install = "npm install --prefix tests/vercel-cli"
    assert f"\n{install}\n" in README
    assert f"\n{install} " in (PROJECT_ROOT / ".ci" / "run").read_text()
    assert 'export PATH="$PWD/tests/vercel-cli/node_modules/.bin:' in README
    assert re.findall(r"`vercel@([\w.-]+)`", README) == [pinned_cli()]


def deploy_button() -> dict[str, str]:
    (url,) = re.findall(r"\]\((https://vercel\.com/new/clone\?[^)\s]+)\)", README)
    query = parse_qs(urlsplit(url).query, strict_parsing=True)
    assert all(len(values) == 1 for values in query.values()), query
    return {key: values[0] for key, values in query.items()}


def test_the_deploy_button_asks_for_settings_crev_reads() -> None:
    button = deploy_button()
    asked = button["env"].split(",")
    crev_settings = [name for name in asked if name not in BUILDER_SETTINGS]
    assert crev_settings and all(name.startswith("CREV_") for name in crev_settings)
    # Every name is one crev reads: none is warned about as unknown.
    defaults = json.loads(button["envDefaults"])
    assert set(defaults) <= set(asked)
    env = {**dict.fromkeys(asked, "1"), **defaults, "CREV_REPO_PREFIX": "acme"}
    settings, warnings = read_settings(env)
    assert warnings == []
    assert settings.routes.default.upstream.host == "ghcr.io"
    for name in BUILDER_SETTINGS & set(asked):
        assert f"| `{name}` |" in README, f"{name} is missing from the settings table"
    # The text beside the button names what it asks for.
    assert ", ".join(f"`{name}`" for name in asked[:-1]) + f" and `{asked[-1]}`" in " ".join(
        README.split()
    )


def test_the_deploy_button_points_at_one_repository_and_the_settings_section() -> None:
    button = deploy_button()
    repository = button["repository-url"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository)
    assert button["envLink"] == f"{repository}#configuration"
    assert "\n## Configuration\n" in README
    if "/OWNER/" in repository:
        assert "`OWNER/crev` in the button's link stands for" in README


# A valid value for each single-route setting of the README's table.
EXAMPLE_VALUES = {
    "CREV_REGISTRY_HOST": "ghcr.io",
    "CREV_REPO_PREFIX": "acme",
    "CREV_REGISTRY_SCHEME": "https",
    "CREV_OFFICIAL_IMAGES": "0",
    "CREV_TOKEN_REALM": "https://ghcr.io/token",
    "CREV_UPSTREAM_USERNAME": "bot",
    "CREV_UPSTREAM_PASSWORD": "secret",
    "CREV_TOKEN_URL": "/api/token",
    "CREV_UPSTREAM_TIMEOUT": "10",
    "CREV_BROWSER_REDIRECT": "https://acme.dev/about",
    "CREV_ALLOW_PUSH": "1",
    "CREV_MAX_BODY_BYTES": "1000",
    "CREV_PUBLIC": "1",
    "CREV_FOLLOW_REDIRECTS": "1",
    "CREV_FALLBACK_REGISTRY_HOST": "docker.io",
    "CREV_FALLBACK_REPO_PREFIX": "acme-old",
    "CREV_FALLBACK_REGISTRY_SCHEME": "https",
    "CREV_FALLBACK_UPSTREAM_USERNAME": "bot",
    "CREV_FALLBACK_UPSTREAM_PASSWORD": "secret",
    "CREV_TAG_CACHE_SECONDS": "60",
    "CREV_MIRROR_REGISTRY_HOST": "docker.io",
    "CREV_MIRROR_REPO_PREFIX": "acme-mirror",
    "CREV_MIRROR_REGISTRY_SCHEME": "https",
    "CREV_MIRROR_UPSTREAM_USERNAME": "bot",
    "CREV_MIRROR_UPSTREAM_PASSWORD": "secret",
    "CREV_FAILOVER_SECONDS": "5",
}


def test_every_crev_variable_in_the_settings_table_is_one_crev_reads() -> None:
    table = re.findall(r"^\| (`CREV_[^|]*)\|", README, re.MULTILINE)
    names = {name for cell in table for name in re.findall(r"`(CREV_[A-Z_]+)`", cell)}
    alternatives = {
        "CREV_ROUTES",
        "CREV_UPSTREAM_TOKEN",
        "CREV_FALLBACK_UPSTREAM_TOKEN",
        "CREV_MIRROR_UPSTREAM_TOKEN",
    }
    assert names - alternatives == set(EXAMPLE_VALUES)
    assert read_settings(EXAMPLE_VALUES)[1] == []
    assert read_settings({"CREV_UPSTREAM_TOKEN": "t"})[1] == []
    fallback = {
        "CREV_FALLBACK_REGISTRY_HOST": "docker.io",
        "CREV_PUBLIC": "1",
        "CREV_REGISTRY_HOST": "ghcr.io",
    }
    assert read_settings({**fallback, "CREV_FALLBACK_UPSTREAM_TOKEN": "t"})[1] == []
    mirror = {"CREV_MIRROR_REGISTRY_HOST": "quay.io", "CREV_PUBLIC": "1"}
    assert read_settings({**mirror, "CREV_MIRROR_UPSTREAM_TOKEN": "t"})[1] == []
    assert read_settings({"CREV_ROUTES": "=ghcr.io/acme"})[1] == []


def test_what_vercel_json_gives_the_build_is_neither_asked_for_nor_said_to_be_unset() -> None:
    build_env = json.loads((PROJECT_ROOT / "vercel.json").read_text())["build"]["env"]
    asked = deploy_button()["env"].split(",")
    for name, value in build_env.items():
        assert name not in asked, f"vercel.json sets {name} already"
        (row,) = re.findall(rf"^\| `{name}` \| ([^|]*)\|", README, re.MULTILINE)
        assert f"`{value}`" in row, f"the settings table gives {name}'s default as {row!r}"


def test_the_local_servers_help_names_every_setting_of_the_table() -> None:
    from crev.__main__ import SETTINGS_HELP

    table = re.findall(r"^\| (`CREV_[^|]*)\|", README, re.MULTILINE)
    names = {name for cell in table for name in re.findall(r"`(CREV_[A-Z_]+)`", cell)}
    assert sorted(name for name in names if name not in SETTINGS_HELP) == []
