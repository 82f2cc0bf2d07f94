"""Measured device profiles (JSON), shipped as package data `na_toolkit.profiles`."""
