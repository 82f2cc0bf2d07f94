"""Analytic hardware models (TOML), shipped as package data `na_toolkit.hwmodels`; see docs/time_models.md."""
