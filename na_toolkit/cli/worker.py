"""`na-toolkit worker --device NAME --address ADDR`: join a Ray cluster as the measuring node of a device.

Run on a board (a Jetson, a phone's host, a GPU box) that should measure the latency of candidates for one
device of a search. It starts a Ray node (`ray start --block`) that offers no CPU to training tasks and
one unit of the custom resource `device:NAME`, so the `ray` executor sends it the measurements of the device
whose config says `resource = "device:NAME"`, one at a time, and nothing else. Ctrl-C stops the node.
`--dry-run` prints the `ray start` command instead of running it. The board needs na-toolkit installed
with the same plugins as the driver.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

from ..bench.base import at_least
from ..errors import ConfigError
from .command import Command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", required=True, help="the device this node measures (its resource: device:NAME)")
    p.add_argument("--address", required=True, help="the Ray cluster's head, HOST:PORT (`ray start --head` prints it)")
    p.add_argument(
        "--num-gpus", type=at_least(0), default=None, help="GPUs the node offers to measurements (default: Ray's count)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the `ray start` command and exit")


def ray_start_command(device: str, address: str, num_gpus: int | None = None) -> list[str]:
    """The `ray start` command line of a fleet node for `device` joining the cluster at `address`."""
    from ..search.executor_ray import device_resource

    resource = device_resource(device)
    cmd = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        f"--address={address}",
        "--num-cpus=0",  # no CPU for training tasks: a measurement never runs beside training
        f"--resources={json.dumps({resource: 1})}",
        "--block",
    ]
    if num_gpus is not None:
        cmd.insert(-1, f"--num-gpus={num_gpus}")
    return cmd


def _run(args: argparse.Namespace) -> int:
    from ..search.config_models import DEVICE_NAME
    from ..search.executor_ray import RAY_MISSING, check_reachable

    if not DEVICE_NAME.fullmatch(args.device):
        raise ConfigError(
            f"--device {args.device!r}: a device name is 1-64 letters, digits, '.', '_' or '-' (as in [devices.NAME])"
        )
    cmd = ray_start_command(args.device, args.address, args.num_gpus)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    check_reachable(args.address, key="--address")
    print(f"na-toolkit: joining {args.address} as the measuring node of device {args.device!r} (Ctrl-C stops it)")
    # Ctrl-C or SIGTERM: subprocess.call kills the Ray node it started, and main says "interrupted" (exit 130)
    # or "terminated" (143), as for every command
    return subprocess.call(cmd)


COMMANDS = (Command("worker", "join a Ray cluster as the node that measures one device", _configure, _run),)
