"""joblib's ``test_parallel`` module, collected here (see conftest.py: only its cases with the skyward backend)."""

from joblib.test import test_parallel as upstream

globals().update({name: value for name, value in vars(upstream).items() if name.startswith("test_")})
