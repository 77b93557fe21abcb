"""``skyward aws sweep``: list, then delete, the security groups and key pairs that interrupted pools left.

A pool whose client was killed outright cannot clean up: its instances end themselves (the lease watchdog), but
its security group and key pair stay. Every `sky.AWS` launch sweeps them already (`sweep_orphans=True`); this
command does it on demand, for an account that no pool is launching in. A dry run unless ``--yes``.
"""

from __future__ import annotations

import argparse
from typing import Any

NAME = "aws"


def register(sub: Any) -> None:
    command = sub.add_parser(NAME, help="AWS housekeeping")
    actions = command.add_subparsers(dest="action", metavar="ACTION", required=True)
    sweep = actions.add_parser(
        "sweep", help="list (then, with --yes, delete) groups and key pairs interrupted pools left"
    )
    sweep.add_argument("--region", help="the region (default: the profile's or AWS_DEFAULT_REGION)")
    sweep.add_argument("--profile", help="the AWS profile (default: the standard credential chain)")
    sweep.add_argument(
        "--older-than",
        type=float,
        default=None,
        metavar="SECONDS",
        help="only what is at least this old (default: as a launch's own sweep, so a pool starting now is safe)",
    )
    sweep.add_argument("--yes", action="store_true", help="delete what is listed (otherwise only list it)")
    sweep.set_defaults(run=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    from skyward.errors import ProvisionError
    from skyward.providers.aws.api import open_clients
    from skyward.providers.aws.deployment import ORPHAN_AGE
    from skyward.providers.aws.sweep import delete_orphans, find_orphans

    try:
        clients = open_clients(args.profile, args.region)
    except ProvisionError as exc:
        print(f"skyward aws sweep: {exc}")
        return 2
    older_than = ORPHAN_AGE if args.older_than is None else args.older_than
    orphans = find_orphans(clients.ec2, older_than)
    if not orphans:
        print(f"nothing to sweep in {clients.region}")
        return 0
    for orphan in orphans:
        what = "security group" if orphan.kind == "group" else "key pair"
        print(f"{orphan.pool_id}  {what:<14}  {orphan.ident}")
    if not args.yes:
        print(
            f"{len(orphans)} left by interrupted pools in {clients.region}; run again with --yes to delete them"
        )
        return 0
    deleted = delete_orphans(clients.ec2, orphans, print)
    missed = len(orphans) - len(deleted)
    print(
        f"deleted {len(deleted)} of {len(orphans)}" + (f" ({missed} still in use or gone)" if missed else "")
    )
    return 0 if not missed else 1
