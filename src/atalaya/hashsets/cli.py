"""`atalaya hashsets …` and `atalaya match`."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Reference hash sets: import, list, remove, fingerprint.", no_args_is_help=True
)


def match_command() -> None:
    """Look hashes up in every imported hash set (placeholder until the index lands)."""
    raise typer.Exit(1)
