"""`sky.plugins.<name>`: installed plugins before helpers, dashed names, one name registered twice."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import skyward as sky
from skyward import plugin_host

Install = Callable[[str, str, str], None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Installs a small plugin distribution the way pip would (a module and a dist-info): (dist, entry, module)."""
    modules: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def installer(dist: str, entry: str, module: str) -> None:
        (tmp_path / f"{module}.py").write_text(
            textwrap.dedent(
                f"""
                import skyward as sky

                class {module.title().replace("_", "")}:
                    def __init__(self, **options):
                        self.options = options

                    @sky.hookimpl
                    def image_transform(self, image, cluster):
                        return {{"not": "an image"}}

                def plugin(**options):
                    return {module.title().replace("_", "")}(**options)
                """
            )
        )
        info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[skyward.plugins]\n{entry} = {module}:plugin\n")
        modules.append(module)

    yield installer
    for module in modules:
        sys.modules.pop(module, None)


def test_a_plugin_named_like_a_helper_wins(install: Install) -> None:
    install("skyward-available", "available", "skyward_available_plugin")
    plugin = sky.plugins.available(level=3)
    assert type(plugin).__name__ == "SkywardAvailablePlugin" and plugin.options == {"level": 3}
    assert "available" in sky.plugins.installed()  # the helper stays reachable under its other name


def test_a_dashed_name_resolves_with_underscores(install: Install) -> None:
    install("skyward-my-plugin", "my-plugin", "skyward_my_plugin")
    assert type(sky.plugins.my_plugin()).__name__ == "SkywardMyPlugin"
    assert type(sky.plugins.load("my-plugin")()).__name__ == "SkywardMyPlugin"


def test_one_name_from_two_distributions_is_refused_naming_both(install: Install) -> None:
    install("skyward-dup-one", "dup", "skyward_dup_one")
    install("skyward-dup-two", "dup", "skyward_dup_two")
    with pytest.raises(ImportError, match=r"'dup'.*skyward-dup-(one|two).*skyward-dup-(one|two)"):
        sky.plugins.dup()


def test_errors_name_an_entry_point_plugin_by_its_entry_point_name(install: Install) -> None:
    install("skyward-badimage", "badimage", "skyward_badimage")
    with (
        pytest.raises(TypeError, match=r"plugin 'badimage': image_transform returned dict"),
        sky.ComputePool(plugins=[sky.plugins.badimage()]),
    ):
        pass
    assert plugin_host.plugin_label(sky.plugins.badimage()) == "badimage"
