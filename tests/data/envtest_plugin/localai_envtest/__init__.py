"""Test-only backend plugin installed into its own environment by tests/test_backend_envs.py."""
