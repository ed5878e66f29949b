"""Shared test settings.

Hypothesis runs a modest number of examples with no deadline: the suite must stay well under its
time budget on a loaded 2-core machine, where a single slow example is noise, not a bug.
"""
from hypothesis import HealthCheck, settings

settings.register_profile(
    "tds",
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("tds")
