"""Plugins run through pluggy: wrappers and tracing, unknown or unmarked hooks, results checked per plugin,
plugin names in errors, the pool handle, exit errors that do not hide the block's own."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

import skyward as sky
from skyward import plugin_host
from skyward.pool_handle import PoolHandle
from skyward.testing import plugin_pool


class Env:
    """Adds ``name=value`` to the image's environment."""

    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    @sky.hookimpl
    def image_transform(self, image: sky.Image, cluster: sky.ClusterSpec) -> sky.Image:
        return replace(image, env={**image.env, self.name: self.value})


class Upper:
    """A wrapper around its own plugin's step: it sees the image folded so far and changes the step's result."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @sky.hookimpl
    def image_transform(self, image: sky.Image, cluster: sky.ClusterSpec) -> sky.Image:
        return replace(image, env={**image.env, "STEP": "upper"})

    @sky.hookimpl(wrapper=True, specname="image_transform")
    def image_transform_wrapper(  # type: ignore[no-untyped-def]
        self, image: sky.Image, cluster: sky.ClusterSpec
    ) -> Generator[None, sky.Image, sky.Image]:
        self.seen.append(image.env.get("FIRST", ""))
        result = yield
        return replace(result, env={**result.env, "STEP": result.env["STEP"].upper()})


@sky.compute
def env_and_pid(name: str) -> tuple[str | None, int]:
    return os.environ.get(name), os.getpid()


def test_a_wrapper_hookimpl_wraps_its_plugins_step_and_reaches_the_nodes() -> None:
    upper = Upper()
    with plugin_pool(Env("FIRST", "one"), upper) as pool:
        value, pid = env_and_pid("STEP") >> pool
    assert upper.seen == ["one"]  # the wrapper saw the image the previous plugin folded
    assert value == "UPPER" and pid != os.getpid()


def test_pluggy_tracing_sees_every_image_transform_call() -> None:
    pm = plugin_host.manager([Env("A", "1"), Env("B", "2")], defaults=())  # the user's plugins' calls only
    calls: list[str] = []
    pm.add_hookcall_monitoring(lambda name, impls, kwargs: calls.append(name), lambda *_: None)
    image = plugin_host.fold_image(pm, sky.Image(), None)
    assert calls == ["image_transform", "image_transform"]
    assert image.env == {"A": "1", "B": "2"}


class Misspelt:
    @sky.hookimpl
    def image_transfrom(self, image: sky.Image, cluster: sky.ClusterSpec) -> sky.Image:
        return image

    @sky.hookimpl
    def around_client(self, pool: object, cluster: sky.ClusterSpec) -> None:
        return None


def test_an_unknown_hook_is_refused_naming_plugin_and_hook() -> None:
    with pytest.raises(
        TypeError,
        match=r"plugin 'Misspelt' implements unknown hook 'image_transfrom' \(did you mean 'image_transform'",
    ):
        sky.ComputePool(plugins=[Misspelt()])


def test_a_hook_named_method_without_hookimpl_is_refused() -> None:
    class Unmarked:
        def image_transform(self, image: sky.Image, cluster: sky.ClusterSpec) -> sky.Image:
            return replace(image, env={"X": "1"})

        @sky.hookimpl
        def around_client(self, pool: object, cluster: sky.ClusterSpec) -> None:
            return None

    with pytest.raises(TypeError, match=r"plugin 'Unmarked' defines 'image_transform' without @sky.hookimpl"):
        sky.ComputePool(plugins=[Unmarked()])


def test_a_specname_hookimpl_is_accepted_and_runs() -> None:
    class Aliased:
        @sky.hookimpl(specname="image_transform")
        def add_marker(self, image: sky.Image, cluster: sky.ClusterSpec) -> sky.Image:
            return replace(image, env={**image.env, "ALIASED": "yes"})

    with plugin_pool(Aliased()) as pool:
        value, pid = env_and_pid("ALIASED") >> pool
    assert value == "yes" and pid != os.getpid()


def test_a_non_image_result_is_refused_naming_that_plugin_not_the_next() -> None:
    class Broken:
        @sky.hookimpl
        def image_transform(self, image: sky.Image, cluster: sky.ClusterSpec) -> object:
            return {"env": {}}

    with (
        pytest.raises(TypeError, match=r"plugin 'Broken': image_transform returned dict"),
        sky.ComputePool(plugins=[Broken(), Env("AFTER", "x")]),
    ):
        pass


def test_none_means_unchanged() -> None:
    class Nothing:
        @sky.hookimpl
        def image_transform(self, image: sky.Image, cluster: sky.ClusterSpec) -> None:
            return None

    with plugin_pool(Env("KEPT", "yes"), Nothing()) as pool:
        assert pool.image.env["KEPT"] == "yes"


def test_plugins_are_named_by_entry_point_or_class() -> None:
    assert plugin_host.plugin_label(sky.plugins.joblib()) == "joblib"
    assert plugin_host.plugin_label(Env("A", "1")) == "Env"
    pm = plugin_host.manager([Env("A", "1"), Env("B", "2"), sky.plugins.joblib()])
    assert {pm.get_name(p) for p in pm.get_plugins()} == {
        "Env#1",
        "Env#2",
        "joblib",
        "skyward.code_shipping",
        "skyward.volumes",
    }


class FailsOnExit:
    def __init__(self) -> None:
        self.handle: object = None

    @sky.hookimpl
    def around_client(self, pool: PoolHandle, cluster: sky.ClusterSpec) -> object:
        self.handle = pool

        @contextmanager
        def failing() -> Iterator[None]:
            try:
                yield
            finally:
                raise OSError("plugin cleanup failed")

        return failing()


def test_a_failing_plugin_exit_does_not_hide_the_blocks_exception(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="the user's error") as caught, plugin_pool(FailsOnExit()):
        raise ValueError("the user's error")
    notes = getattr(caught.value, "__notes__", [])
    assert any(
        "'FailsOnExit' also failed on exit" in note and "plugin cleanup failed" in note for note in notes
    )
    assert "plugin cleanup failed" in caplog.text


def test_a_failing_plugin_exit_still_raises_when_the_block_did_not() -> None:
    with pytest.raises(OSError, match="plugin cleanup failed"), plugin_pool(FailsOnExit()):
        pass


def test_around_client_gets_a_narrow_handle_that_runs_work_on_the_nodes() -> None:
    plugin = FailsOnExit()
    with pytest.raises(OSError), plugin_pool(plugin) as pool:
        handle = plugin.handle
        assert isinstance(handle, PoolHandle) and not hasattr(handle, "_secret")
        assert not hasattr(handle, "_scheduler") and not hasattr(handle, "provider")
        assert handle.pool_id == pool.pool_id and handle.total_slots == 1 and handle.concurrency == 1
        pid = handle.submit(os.getpid).result()
        assert pid != os.getpid() and [n.pid for n in handle.nodes] == [pid]


def test_factories_forward_their_options() -> None:
    assert sky.plugins.joblib(task_timeout=5).task_timeout == 5
    assert sky.plugins.sklearn(task_timeout=7).joblib.task_timeout == 7


def test_code_shipping_is_a_default_plugin_on_every_pool() -> None:
    from skyward.code_shipping import ship_local_modules_by_value
    from skyward.default_plugins import CodeShipping

    pm = plugin_host.manager([])
    assert isinstance(pm.get_plugin("skyward.code_shipping"), CodeShipping)
    remote = type("Remote", (), {"shares_client_files": False})()
    assert plugin_host.task_preparers(pm, provider=remote, cluster=None) == [ship_local_modules_by_value]
    assert plugin_host.task_preparers(pm, provider=sky.Local(), cluster=None) == []


def test_a_plugins_task_preparer_runs_before_each_task_is_pickled() -> None:
    calls: list[int] = []

    class Counting:
        @sky.hookimpl
        def task_preparer(self, provider: object, cluster: sky.ClusterSpec) -> object:
            return lambda: calls.append(1)

    with plugin_pool(Counting()) as pool:
        before = len(calls)
        pids = [pool.submit(os.getpid).result() for _ in range(3)]
        assert os.getpid() not in pids
    assert len(calls) - before == 3
