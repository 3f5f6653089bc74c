"""`corral image build-tiny`: the tiny Linux guest used by the lab and the tests."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Boot images.", no_args_is_help=True)
err = Console(stderr=True)


def default_images_dir() -> Path:
    return Path(os.environ.get("CORRAL_IMAGES_DIR", "/var/lib/corral/images"))


@app.command("build-tiny")
def build_tiny_cmd(
    images_dir: Path = typer.Option(None, help="Where images live (default: $CORRAL_IMAGES_DIR "
                                    "or /var/lib/corral/images)."),
    force: bool = typer.Option(False, help="Rebuild even when the image exists."),
) -> None:
    """Build a kernel + busybox initramfs guest from Debian packages."""
    from corral.image.tiny import build_tiny

    target = images_dir or default_images_dir()
    with err.status("building the tiny guest") as status:
        path = build_tiny(target, force=force, log=lambda line: status.update(line))
    typer.echo(str(path))
