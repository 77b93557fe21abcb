"""`sky.S3Volume` and ``volume=[...]``: eager checks, what the agent configuration carries, the image s3fs joins."""

from __future__ import annotations

import json

import pytest

import skyward as sky
from skyward import plugin_host
from skyward.agent_config import AgentConfig
from skyward.integrations import JoblibPool, ScikitLearnPool
from skyward.volumes import VolumeError, agent_entries, check_volumes
from skyward.volumes.diagnose import explain
from skyward.volumes.mount import _environment, s3fs_command

SECRET = "wJalrXUtnFEMI-not-a-real-secret"


@pytest.fixture
def client_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture
def no_client_keys(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("data", "bkt"), "absolute path"),
        (("/", "bkt"), "cannot be mounted over"),
        (("/data", ""), "non-empty bucket"),
        (("/data", "My_Bucket"), "not a bucket name"),
        (("/data", "bkt", "a/../b"), r"'\.' or '\.\.'"),
        (("/data", "bkt", "a:b"), "without ':'"),
    ],
)
def test_bad_volumes_are_refused_when_made(arguments: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sky.S3Volume(*arguments)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"endpoint_url": "ftp://x"}, "http"),
        ({"credentials": "mine"}, "credentials must be one of"),
        ({"mount_timeout": 0}, "mount_timeout"),
        ({"region": "EU WEST"}, "region"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sky.S3Volume("/data", "bkt", **settings)  # type: ignore[arg-type]


def test_paths_are_normalised_and_sources_named() -> None:
    volume = sky.S3Volume("/data/", "my-bucket", "/datasets/")
    assert volume.mount_path == "/data"
    assert volume.source == "s3://my-bucket/datasets/"
    assert sky.S3Volume("/d", "my-bucket").source == "s3://my-bucket/"


def test_a_pool_refuses_duplicate_nested_or_unlisted_volumes() -> None:
    a = sky.S3Volume("/data", "bkt")
    with pytest.raises(ValueError, match="two volumes are mounted at '/data'"):
        sky.ComputePool(volume=[a, sky.S3Volume("/data/", "other")])
    with pytest.raises(ValueError, match="'/data/x' is inside '/data'"):
        sky.ComputePool(volume=[a, sky.S3Volume("/data/x", "other")])
    with pytest.raises(TypeError, match=r"write volume=\[S3Volume"):
        sky.ComputePool(volume=a)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="entries must be sky.S3Volume"):
        sky.ComputePool(volume=["/data"])  # type: ignore[list-item]
    assert check_volumes([a, sky.S3Volume("/data2", "bkt")]) == (a, sky.S3Volume("/data2", "bkt"))


def test_every_pool_class_takes_volume_and_passes_it_on() -> None:
    volumes = [sky.S3Volume("/data", "my-bucket", "datasets/")]
    for pool_class in (sky.ComputePool, JoblibPool, ScikitLearnPool):
        assert pool_class(volume=volumes).cluster.volumes == tuple(volumes)
        assert pool_class().cluster.volumes == ()
    with pytest.raises(ValueError, match=r"ScikitLearnPool\(volume=...\): two volumes"):
        ScikitLearnPool(volume=volumes * 2)


def test_the_default_plugin_adds_s3fs_to_the_image_of_a_pool_with_volumes(client_keys: None) -> None:
    pool = sky.ComputePool(volume=[sky.S3Volume("/data", "bkt")], image=sky.Image(apt=["curl"]))
    image = plugin_host.fold_image(plugin_host.manager(()), pool.image, pool.cluster)
    assert image.apt == ("curl", "s3fs")
    plain = sky.ComputePool(image=sky.Image(apt=["curl"]))
    assert plugin_host.fold_image(plugin_host.manager(()), plain.image, plain.cluster).apt == ("curl",)


def test_missing_client_credentials_fail_the_pool_before_any_node_starts(no_client_keys: None) -> None:
    class Refuses:  # a provider that fails the test if the pool gets as far as launching
        name = "refuses"
        shares_client_files = True

        def launch(self, *args: object) -> None:
            raise AssertionError("launched despite missing credentials")

    pool = sky.ComputePool(provider=Refuses(), volume=[sky.S3Volume("/data", "bkt")])  # type: ignore[arg-type]
    with pytest.raises(VolumeError, match="boto3 finds none here"), pool:
        pass
    anonymous = sky.ComputePool(
        provider=Refuses(), volume=[sky.S3Volume("/d", "bkt", credentials="anonymous")]
    )  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="launched"), anonymous:
        pass


def test_credentials_travel_in_the_agent_line_only(client_keys: None) -> None:
    volume = sky.S3Volume("/data", "bkt", "datasets/", endpoint_url="http://10.0.0.1:9000")
    config = AgentConfig.for_node(b"s" * 32, "node-0", volumes=agent_entries([volume]))
    line = config.encode()
    assert SECRET in line  # on the agent's stdin
    assert SECRET not in repr(config)
    decoded = AgentConfig.decode(line)
    assert decoded.volumes == config.volumes
    (entry,) = json.loads(line)["volumes"]
    assert entry["keys"] == {"access_key": "AKIATESTKEY", "secret_key": SECRET}
    command = s3fs_command(volume)
    assert SECRET not in " ".join(command) and "AKIATESTKEY" not in " ".join(command)
    assert command[1:4] == ["bkt:/datasets", "/data", "-f"]
    assert "use_path_request_style" in command[-1] and ",ro" in command[-1]
    env = _environment(entry["keys"], "/private/dir")
    assert env["AWS_SECRET_ACCESS_KEY"] == SECRET and env["HOME"] == "/private/dir"


def test_instance_profile_and_anonymous_volumes_carry_no_keys(client_keys: None) -> None:
    entries = agent_entries(
        [
            sky.S3Volume("/a", "bkt", credentials="instance-profile"),
            sky.S3Volume("/b", "bkt", credentials="anonymous"),
        ]
    )
    assert all("keys" not in entry for entry in entries)
    assert "iam_role=auto" in s3fs_command(sky.S3Volume("/a", "bkt", credentials="instance-profile"))[-1]
    assert "public_bucket=1" in s3fs_command(sky.S3Volume("/a", "bkt", credentials="anonymous"))[-1]
    assert ",ro" not in s3fs_command(sky.S3Volume("/a", "bkt", read_only=False))[-1]


@pytest.mark.parametrize(
    ("log", "cause"),
    [
        ("<Error><Code>NoSuchBucket</Code></Error>", "the bucket 'bkt' does not exist"),
        ("<Error><Code>InvalidAccessKeyId</Code></Error>", "the credentials were refused"),
        ("curl: Couldn't connect to server", "cannot reach"),
        ("s3fs: could not determine how to establish security credentials.", "no credentials reached s3fs"),
        ("", "no known reason"),
    ],
)
def test_mount_failures_are_explained(tmp_path, log: str, cause: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s3fs.log"
    path.write_text(log)
    assert cause in explain(sky.S3Volume("/data", "bkt"), str(path))


def test_a_volume_without_endpoint_uses_boto3s_endpoint_here(
    client_keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    volume = sky.S3Volume("/data", "my-bucket", "datasets/")
    assert agent_entries([volume])[0]["endpoint_url"] is None  # AWS S3
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://10.0.0.1:9000")
    assert agent_entries([volume])[0]["endpoint_url"] == "http://10.0.0.1:9000"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://10.0.0.2:9000")
    assert agent_entries([volume])[0]["endpoint_url"] == "http://10.0.0.2:9000"
    explicit = sky.S3Volume("/data", "my-bucket", endpoint_url="http://10.0.0.3:9000")
    assert agent_entries([explicit])[0]["endpoint_url"] == "http://10.0.0.3:9000"


def test_aws_refuses_an_empty_instance_profile() -> None:
    with pytest.raises(ValueError, match="iam_instance_profile"):
        sky.AWS(iam_instance_profile=" ")
    assert sky.AWS(iam_instance_profile="nodes").iam_instance_profile == "nodes"


def test_mode_is_checked_and_a_copy_cannot_be_writable() -> None:
    assert sky.S3Volume("/data", "bkt").mode == "auto"
    with pytest.raises(ValueError, match="mode must be one of 'auto', 'mount', 'copy'"):
        sky.S3Volume("/data", "bkt", mode="fuse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode='copy' is read-only"):
        sky.S3Volume("/data", "bkt", read_only=False, mode="copy")


@pytest.mark.parametrize(
    ("mode", "apt", "pip"),
    [("auto", ("s3fs",), ("boto3>=1.34",)), ("mount", ("s3fs",), ()), ("copy", (), ("boto3>=1.34",))],
)
def test_the_image_gets_what_the_mode_may_use(client_keys: None, mode: str, apt: tuple, pip: tuple) -> None:  # type: ignore[type-arg]
    pool = sky.ComputePool(volume=[sky.S3Volume("/data", "bkt", mode=mode)])  # type: ignore[arg-type]
    image = plugin_host.fold_image(plugin_host.manager(()), pool.image, pool.cluster)
    assert (image.apt, image.pip) == (apt, pip)


def test_the_plan_copies_where_fuse_is_unusable(monkeypatch: pytest.MonkeyPatch) -> None:
    from skyward.volumes.choose import fuse_unusable_reason, plan

    monkeypatch.setenv("SKYWARD_VOLUMES_NO_FUSE", "1")
    assert fuse_unusable_reason() == "SKYWARD_VOLUMES_NO_FUSE is set"
    volumes = [sky.S3Volume(f"/{m}", "bkt", mode=m) for m in ("auto", "mount", "copy")]  # type: ignore[arg-type]
    reasons = [p.copy_reason for p in plan([(v, None) for v in volumes])]
    assert reasons == ["no FUSE here: SKYWARD_VOLUMES_NO_FUSE is set", None, "mode='copy'"]
    with pytest.raises(VolumeError, match="would not upload what tasks write"):
        plan([(sky.S3Volume("/w", "bkt", read_only=False), None)])
    monkeypatch.setenv("SKYWARD_VOLUMES_NO_FUSE", "0")
    monkeypatch.setattr("os.open", lambda *a: (_ for _ in ()).throw(FileNotFoundError()))
    assert fuse_unusable_reason() == "/dev/fuse missing"
