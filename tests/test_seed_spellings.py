"""The older docs' spellings keep working: ``vcpus=``, ``memory_gb=`` and ``ScikitLearnPool(joblib_version=)``."""

from __future__ import annotations

from importlib.metadata import version

import pytest

import skyward as sky
from skyward.integrations import JoblibPool, ScikitLearnPool


def test_vcpus_and_memory_gb_are_cpu_and_memory() -> None:
    pool = sky.ComputePool(provider=sky.AWS(), nodes=2, vcpus=64, memory_gb=16)
    assert pool.cluster.resources.cpu == 64
    assert pool.cluster.resources.memory == "16GB"
    fractional = sky.ComputePool(provider=sky.AWS(), memory_gb=0.5)
    assert fractional.cluster.resources.memory == "0.5GB"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"cpu": 8, "vcpus": 64}, "vcpus is another name for cpu"),
        ({"memory": "8GB", "memory_gb": 16}, "memory_gb=N is memory='NGB'"),
        ({"memory_gb": "16GB"}, "memory_gb must be a positive number"),
        ({"memory_gb": 0}, "memory_gb must be a positive number"),
    ],
)
def test_both_spellings_or_bad_values_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sky.ComputePool(provider=sky.AWS(), **settings)  # type: ignore[arg-type]


def test_a_provider_that_cannot_choose_machines_refuses_the_old_spelling_too() -> None:
    with pytest.raises(ValueError, match=r"cpu=64.*cannot be honoured"):
        sky.ComputePool(vcpus=64)  # Local


def test_pool_classes_take_the_spellings() -> None:
    joblib_pool = JoblibPool(provider=sky.AWS(), vcpus=4, memory_gb=8)
    assert (joblib_pool.cluster.resources.cpu, joblib_pool.cluster.resources.memory) == (4, "8GB")
    sklearn_pool = ScikitLearnPool(provider=sky.AWS(), vcpus=4, memory_gb=8)
    assert (sklearn_pool.cluster.resources.cpu, sklearn_pool.cluster.resources.memory) == (4, "8GB")
    with pytest.raises(ValueError, match="give one"):
        ScikitLearnPool(provider=sky.AWS(), cpu=2, vcpus=4)


def _image_of(pool: sky.ComputePool) -> sky.Image:
    (plugin,) = pool.plugins
    return plugin.image_transform(image=sky.Image(), cluster=pool.cluster)  # type: ignore[attr-defined]


def test_scikit_learn_pool_takes_joblib_version_like_joblib_pool() -> None:
    pinned = ScikitLearnPool(joblib_version="1.4.2", sklearn_version=version("scikit-learn"))
    pip = _image_of(pinned).pip
    assert "joblib==1.4.2" in pip
    assert f"scikit-learn=={version('scikit-learn')}" in pip
    default = ScikitLearnPool()
    assert f"joblib=={version('joblib')}" in _image_of(default).pip
    with pytest.raises(ValueError, match="exact version"):
        ScikitLearnPool(joblib_version="not a version")
