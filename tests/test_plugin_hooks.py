"""Plugins: hook order and folding, around_client on both entry names, entry-point resolution."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

import skyward as sky


class Recorder:
    """A plugin that records what its hooks see, into a shared event list."""

    def __init__(self, name: str, events: list[str], env_value: str | None = None) -> None:
        self.name = name
        self.events = events
        self.env_value = env_value

    @sky.hookimpl
    def image_transform(self, image: sky.Image, cluster: sky.ClusterSpec) -> sky.Image:
        self.events.append(f"image:{self.name}:{image.env.get('CHAIN', '')}")
        chain = image.env.get("CHAIN", "") + self.name
        return replace(image, env={**image.env, "CHAIN": chain})

    @sky.hookimpl
    def around_client(self, pool: sky.ComputePool, cluster: sky.ClusterSpec):  # type: ignore[no-untyped-def]
        @contextmanager
        def active() -> Iterator[None]:
            self.events.append(f"enter:{self.name}:{pool.total_slots}")
            try:
                yield
            finally:
                self.events.append(f"exit:{self.name}")

        return active()


@sky.compute
def read_env(name: str) -> tuple[str | None, int]:
    return os.environ.get(name), os.getpid()


@pytest.mark.parametrize("entry", [sky.ComputePool, sky.Compute])
def test_hooks_run_in_plugin_order_under_either_name(entry: type[sky.ComputePool]) -> None:
    events: list[str] = []
    plugins = [Recorder("a", events), Recorder("b", events), Recorder("c", events)]
    with entry(nodes=1, plugins=plugins) as pool:
        assert events == ["image:a:", "image:b:a", "image:c:ab", "enter:a:1", "enter:b:1", "enter:c:1"]
        # the folded image reached the node
        value, pid = read_env("CHAIN") >> pool
        assert value == "abc" and pid != os.getpid()
    assert events[-3:] == ["exit:c", "exit:b", "exit:a"]


def test_around_client_is_exited_when_the_block_raises() -> None:
    events: list[str] = []
    with pytest.raises(RuntimeError, match="inside"):
        with sky.Compute(nodes=1, plugins=[Recorder("a", events), Recorder("b", events)]):
            raise RuntimeError("inside the block")
    assert events[-2:] == ["exit:b", "exit:a"]


def test_around_client_is_exited_on_keyboard_interrupt() -> None:
    events: list[str] = []
    with pytest.raises(KeyboardInterrupt), sky.ComputePool(nodes=1, plugins=[Recorder("a", events)]):
        raise KeyboardInterrupt
    assert events[-1] == "exit:a"


def test_image_transform_must_return_an_image() -> None:
    class Broken:
        @sky.hookimpl
        def image_transform(self, image: sky.Image) -> str:
            return "not an image"

    with pytest.raises(TypeError, match="image_transform"), sky.ComputePool(nodes=1, plugins=[Broken()]):
        pass


def test_an_object_without_hooks_is_not_a_plugin() -> None:
    def factory() -> object:
        return object()

    with pytest.raises(TypeError, match="call it"):
        sky.ComputePool(plugins=[factory])


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A small third-party plugin package, installed the way pip would: a module and a dist-info."""
    package = "skyward_testplugin_marker"
    (tmp_path / f"{package}.py").write_text(
        textwrap.dedent(
            """
            import skyward as sky

            class MarkerPlugin:
                def __init__(self, value):
                    self.value = value

                @sky.hookimpl
                def image_transform(self, image, cluster):
                    return image.__class__(python=image.python, pip=image.pip, apt=image.apt,
                                           env={**image.env, "MARKER": self.value})

            def plugin(value="default"):
                return MarkerPlugin(value)
            """
        )
    )
    dist = tmp_path / "skyward_testplugin_marker-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: skyward-testplugin-marker\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[skyward.plugins]\nmarker = {package}:plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    sys.modules.pop(package, None)


def test_entry_point_plugin_resolves_by_name(installed_plugin: str) -> None:
    assert "marker" in sky.plugins.available()
    plugin = sky.plugins.marker(value="from-entry-point")
    with sky.ComputePool(nodes=1, plugins=[plugin]) as pool:
        value, pid = read_env("MARKER") >> pool
    assert value == "from-entry-point" and pid != os.getpid()


def test_unknown_plugin_name_lists_the_installed_ones(installed_plugin: str) -> None:
    with pytest.raises(AttributeError, match=r"no skyward plugin named 'nope'.*marker"):
        sky.plugins.nope()
