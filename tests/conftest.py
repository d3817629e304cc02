"""Shared test set-up. `custom_components` must be imported before Home Assistant's test plugin runs."""

import custom_components  # noqa: F401  # isort: skip
