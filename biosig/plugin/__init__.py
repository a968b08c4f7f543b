"""Plugins: the contract a plugin implements, how plugins are found, scaffolded and given inputs
and labels."""
