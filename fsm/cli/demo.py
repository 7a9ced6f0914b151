"""``berth demo``: a real busybox container through its whole lifecycle on the embedded
defaults, each committed transition printed as it happens."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fsm.cli.context import Context, pass_context
from fsm.errors import BerthError, NoSuchImage

if TYPE_CHECKING:
    from fsm.orchestrator import Orchestrator

DEMO_IMAGE = "berth-demo-busybox"


def build_busybox_tar(target: Path) -> Path:
    """A root filesystem tarball of Debian's busybox-static and its applet links."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise BerthError("the demo needs busybox-static: apt-get install busybox-static")
    with tempfile.TemporaryDirectory(prefix="berth-demo-") as tree_name:
        tree = Path(tree_name)
        for directory in ("bin", "etc", "tmp", "root", "proc", "sys", "dev"):
            (tree / directory).mkdir()
        shutil.copy2(busybox, tree / "bin" / "busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
        for applet in applets.stdout.split():
            if applet != "busybox":
                (tree / "bin" / applet).symlink_to("busybox")
        (tree / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (tree / "tmp").chmod(0o1777)
        subprocess.run(["tar", "-C", str(tree), "-cf", str(target), "."], check=True)
    return target


def ensure_demo_image(orc: Orchestrator) -> str:
    try:
        orc.image(DEMO_IMAGE)
    except NoSuchImage:
        with tempfile.TemporaryDirectory(prefix="berth-demo-") as scratch:
            orc.import_image(DEMO_IMAGE, build_busybox_tar(Path(scratch) / "busybox.tar"))
    return DEMO_IMAGE


def run_demo(orc: Orchestrator, echo: Callable[[str], None], keep: bool = False) -> None:
    echo(f"data root {orc.settings.root}, database {orc.settings.database_url}")
    echo(f"storage {orc.storage.name}, runtime {orc.runtime.name}")
    image = ensure_demo_image(orc)
    container = orc.create(
        image, ["sh", "-c", "echo hello from $(hostname); ls /sys/class/net; exit 7"],
        network_mode="none", env={"GREETING": "hi"},
    )
    echo(f"created {container.name} ({container.id[:12]})")
    orc.start(container.id)
    exit_code = orc.wait(container.id, timeout=120)
    echo("transitions:")
    for record in orc.history(container.id):
        echo(f"  {record.trigger:<10} {record.source:>10} -> {record.dest:<10} "
             f"{record.duration * 1000:8.1f} ms")
    echo("output:")
    for line in orc.log_text(container.id).splitlines():
        echo(f"  {line}")
    echo("events:")
    for event in orc.events(container=container.id):
        echo(f"  {event.action:<8} {event.attributes}")
    echo(f"exit code {exit_code}")
    if not keep:
        orc.remove(container.id)
        echo(f"removed {container.id[:12]}")


@click.command()
@click.option("--keep", is_flag=True, help="Keep the container afterwards.")
@pass_context
def demo(obj: Context, /, keep: bool) -> None:
    """Drive a real busybox container through its lifecycle and show each step.

    \b
    Example: berth demo
    """
    run_demo(obj.orc, echo=click.echo, keep=keep)


COMMANDS = (demo,)
