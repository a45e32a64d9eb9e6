"""Atalaya: watch P2P networks for known hashes and turn sightings into cases."""

__version__ = "0.1.0"
