"""Test support shipped with the package: the scripted Anthropic Messages API model."""
