"""Fixtures shared by the handler and end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

# The checks shared from tests/support and rig/ assert: rewritten, as pytest rewrites a test
# module's, a failure shows the values compared. Only modules imported after this are rewritten.
pytest.register_assert_rewrite("tests.support", "rig")

from rig import PushedImage, TestRegistry, seed_images  # noqa: E402
from rig.crev_process import CrevProcess, crev_for  # noqa: E402
from tests.support.crev_server import CrevServer, start_crev_server  # noqa: E402
from tests.support.registry_fixtures import running_registry  # noqa: E402


@pytest.fixture
def start_crev(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., CrevServer]]:
    """Start crev with the given `CREV_*` settings (keyword names without the prefix)."""
    servers: list[CrevServer] = []

    def start(**settings: str) -> CrevServer:
        server = start_crev_server(monkeypatch, **settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """A skipped test names itself and where it is, not the helper in tests/support or rig/
    that skipped it (`SKIPPED [3] tests/support/tools.py:43` said neither which tests nor
    why); pytest reports a skip in a fixture at the test already, but without its name."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        _, _, reason = report.longrepr
        test_path, line, _ = item.reportinfo()
        name = getattr(item, "originalname", item.name)
        reason = reason.removeprefix("Skipped: ")
        report.longrepr = (str(test_path), (line or 0) + 1, f"{name}: {reason}")
    return report


# A real distribution registry with token auth, seeded with the standard images.
registry = pytest.fixture(scope="session", name="registry")(running_registry)
images = pytest.fixture(scope="session", name="images")(seed_images)


@pytest.fixture(scope="session")
def crev_process(
    registry: TestRegistry, images: dict[str, PushedImage], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CrevProcess]:
    """`python -m crev` serving the registry's `acme/` namespace."""
    with crev_for(registry, tmp_path_factory.mktemp("crev")) as crev:
        yield crev


@pytest.fixture(scope="session")
def push_crev(
    registry: TestRegistry, images: dict[str, PushedImage], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CrevProcess]:
    """`python -m crev` in front of the registry's `acme/` namespace, with pushing allowed."""
    with crev_for(registry, tmp_path_factory.mktemp("push"), allow_push="1") as crev:
        yield crev
