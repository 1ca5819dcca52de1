"""How long the machines run: a bounded, deterministic run for the test suite and
``eventlab check``, and a long, randomised one (``pytest --hypothesis-profile=long``)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

LONG = "long"
LONG_FACTOR = 20
"""How many times more examples a machine runs under the ``long`` profile."""

BOUNDED = settings(
    derandomize=True,  # the same examples on every run: a CI failure reproduces anywhere
    database=None,
    deadline=None,  # no wall-clock bound: a busy machine is slow, not wrong
    stateful_step_count=15,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
    # The first failure found is shrunk and reported, and the run ends: a failing bounded run
    # stays short (the long profile reports every distinct failure it finds).
    report_multiple_bugs=False,
)


def register_profiles() -> None:
    """Register the ``long`` profile (``--hypothesis-profile=long``): every Hypothesis test
    explores more, randomly, and the machines run :data:`LONG_FACTOR` times their examples
    with longer sequences."""
    settings.register_profile(
        LONG,
        max_examples=2_000,
        deadline=None,
        stateful_step_count=40,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=True,
    )


def machine_settings(examples: int) -> settings:
    """Settings for a machine's run of ``examples`` examples: bounded and derandomised, or,
    under the ``long`` profile, :data:`LONG_FACTOR` times as many, random."""
    if settings.get_current_profile_name() == LONG:
        return settings(settings.default, max_examples=examples * LONG_FACTOR)
    return settings(BOUNDED, max_examples=examples)
