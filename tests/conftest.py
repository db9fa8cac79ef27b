"""Shared fixtures: small seeded data so every failure can be replayed."""

import pytest

from naive import clustered


@pytest.fixture(scope="session")
def small_data():
    """(X, Q): 4000 base vectors and 50 queries in 32 dimensions."""
    return clustered(4000, 32, seed=1), clustered(50, 32, seed=2)
