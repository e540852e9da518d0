"""`python -m local`: the local stack and its emulated VMs, by hand.

    python -m local dev [--port N] [--no-host] [--keep]   start everything (what `make dev` runs)
    python -m local demo                            the manual test plan, timed (what `make demo` runs)
    python -m local user add NAME [--group GROUP ...]      a person of the tenant (in groups)
    python -m local token NAME [--for arm]          an access token of NAME: for the API, or Resource Manager
    python -m local role assign NAME ROLE SCOPE [--as WHO]  a role assignment, made by WHO (alice)
    python -m local vm create NAME [--vnet V] [--subnet S] [--tag K=V ...] [--admin-user U] [--ssh-key KEY]
    python -m local vm list
    python -m local vm run NAME [--param K=V ...] [--script FILE] [-- COMMAND ...]
    python -m local vm restart NAME | vm delete NAME

Commands other than `dev` talk to the emulator named in `.local/dev.env`, in its resource group
unless `--group` says otherwise, as alice unless `--as` names another person: the emulator allows
each only what that person's roles allow, as Azure does. VM creation posts the Event Grid event a
real VM creation posts, naming who wrote the VM, so a VM tagged for auto-attach is attached by
the running app on its own when its writer may join that storage.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import urllib.error
import uuid
from pathlib import Path

from local import demo, dev, playground
from local.control import Control, ControlError
from local.rest import ArmRequestError, ArmRest

DEFAULT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAzlinLocalDevelopmentKeyOnlyForTheEmulator azlin@local"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is the command to run in a VM, whatever options it has.
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = _parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.command = command
    try:
        return int(args.handler(args))
    except (ArmRequestError, ControlError) as error:
        print(f"error: {error}", file=sys.stderr)
    except urllib.error.URLError as error:
        print(
            f"error: the emulator in {dev.DEV_ENV} does not answer ({error.reason}): is `make dev` running?",
            file=sys.stderr,
        )
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(required=True, metavar="command")
    run_dev = commands.add_parser("dev", help="start Azurite, the Azure emulator and the Functions host")
    run_dev.add_argument("--port", type=int, help="the Functions host's port (default: $PORT, else 7071)")
    run_dev.add_argument("--no-host", action="store_true", help="leave serving the app to `func start`")
    run_dev.add_argument("--keep", action="store_true",
                         help="go on from the storage, VMs and records of the last --keep run, and keep them "
                              "(default: start empty)")
    run_dev.set_defaults(handler=lambda a: dev.run(a.port, serve_app=not a.no_host, keep=a.keep))
    commands.add_parser("demo", help="play the manual test plan against the local stack").set_defaults(
        handler=lambda a: demo.run()
    )

    people = commands.add_parser("user", help="people of the tenant")
    user = people.add_subparsers(required=True, metavar="action")
    add_user = user.add_parser("add", help="add a user (and the groups named, when missing)")
    add_user.add_argument("name")
    add_user.add_argument("--group", action="append", default=[], help="a group to join (repeatable)")
    add_user.set_defaults(handler=add_person)
    token = commands.add_parser("token", help="print a fresh access token of a user or service principal")
    token.add_argument("name")
    token.add_argument("--for", dest="audience", choices=("api", "arm"), default="api",
                       help="api: for the service's API (default); arm: for Resource Manager")
    token.set_defaults(handler=print_token)
    roles = commands.add_parser("role", help="role assignments")
    role = roles.add_subparsers(required=True, metavar="action")
    assign = role.add_parser("assign", help="assign ROLE (a name such as Reader, or a GUID) at SCOPE (an "
                             "ARM id such as /subscriptions/.../resourceGroups/G, or a resource group name)")
    assign.add_argument("name")
    assign.add_argument("role")
    assign.add_argument("scope")
    assign.add_argument("--as", dest="actor", default=dev.ALICE, help="who assigns it (default alice)")
    assign.set_defaults(handler=assign_role)

    vm = commands.add_parser("vm", help="emulated VMs").add_subparsers(required=True, metavar="action")
    create = vm.add_parser("create", help="create a VM (a NIC in the VNet's subnet, then the VM)")
    create.add_argument("name")
    create.add_argument("--vnet", default=dev.VNET)
    create.add_argument("--subnet", default="default")
    create.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument("--admin-user", default="azureuser")
    create.add_argument("--ssh-key", default=DEFAULT_KEY, help="public key text, or a file holding it")
    create.set_defaults(handler=create_vm)
    listing = vm.add_parser("list", help="list VMs with their power state and address")
    listing.set_defaults(handler=list_vms)
    run = vm.add_parser("run", help="run a command as root in a VM through a managed Run Command")
    run.add_argument("name")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Run Command parameter: an environment variable of the script",
    )
    run.add_argument("--script", type=Path, help="a script file to run instead of COMMAND")
    run.set_defaults(handler=run_in_vm)
    for action, handler in (("restart", restart_vm), ("delete", delete_vm)):
        sub = vm.add_parser(action, help=f"{action} a VM")
        sub.add_argument("name")
        sub.set_defaults(handler=handler)
    for sub in vm.choices.values():
        sub.add_argument("--group", default=None, help="resource group (default: the dev one)")
        sub.add_argument("--as", dest="actor", default=dev.ALICE, help="who acts (default alice)")
    return parser


def _control() -> tuple[Control, dict[str, str]]:
    settings = dev.read_settings()
    return Control(settings["ARM_ENDPOINT"], settings["ARM_CA_BUNDLE"]), settings


def _client(args: argparse.Namespace) -> tuple[ArmRest, str, str]:
    """The emulator of `.local/dev.env` as `--as`, the resource group to work in, and its
    providers path."""
    control, settings = _control()
    rest = ArmRest(settings["ARM_ENDPOINT"], settings["ARM_CA_BUNDLE"], settings["AZURE_SUBSCRIPTION_ID"],
                   control.token_source(args.actor, arm=True))
    group = args.group or settings["DEFAULT_RESOURCE_GROUP"]
    return rest, group, playground.providers(rest, group)


def add_person(args: argparse.Namespace) -> int:
    control, _ = _control()
    made = control.add_user(args.name, args.group)
    groups = f" in {', '.join(args.group)}" if args.group else ""
    print(f"{made['name']}: object id {made['objectId']}{groups}")
    return 0


def print_token(args: argparse.Namespace) -> int:
    control, _ = _control()
    print(control.token(args.name, arm=args.audience == "arm"))
    return 0


def assign_role(args: argparse.Namespace) -> int:
    """A role assignment through Resource Manager, as `--as` (who needs roleAssignments/write)."""
    control, settings = _control()
    subscription = settings["AZURE_SUBSCRIPTION_ID"]
    rest = ArmRest(settings["ARM_ENDPOINT"], settings["ARM_CA_BUNDLE"], subscription,
                   control.token_source(args.actor, arm=True))
    scope = args.scope if args.scope.startswith("/") else rest.group_path(args.scope)
    definitions = f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions"
    found = rest.get(f"{definitions}?$filter=roleName eq '{args.role}'")["value"] or [
        rest.get(f"{definitions}/{args.role}")]
    principal = control.principal(args.name)
    made = rest.put(f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}", {
        "properties": {"roleDefinitionId": found[0]["id"], "principalId": principal["objectId"],
                       "principalType": principal["kind"]}})
    print(f"{principal['name']} is {found[0]['properties']['roleName']} at {made['properties']['scope']}")
    return 0


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{what} {value!r} must be KEY=VALUE")
        pairs[key] = text
    return pairs


def create_vm(args: argparse.Namespace) -> int:
    rest, group, base = _client(args)
    key = Path(args.ssh_key).read_text().strip() if Path(args.ssh_key).is_file() else args.ssh_key
    subnet = f"{base}/Microsoft.Network/virtualNetworks/{args.vnet}/subnets/{args.subnet}"
    region = rest.get(rest.group_path(group))["location"]
    made = playground.vm(
        rest, group, args.name, subnet, region, admin=args.admin_user, key=key, tags=_pairs(args.tag, "--tag")
    )
    nic = rest.get(made["properties"]["networkProfile"]["networkInterfaces"][0]["id"])
    address = nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
    print(
        f"{made['name']}: vmId {made['properties']['vmId']}, {address} in {args.vnet}/{args.subnet}, "
        f"admin {args.admin_user}, tags {made.get('tags') or {}}"
    )
    return 0


def list_vms(args: argparse.Namespace) -> int:
    rest, _group, base = _client(args)
    for vm in rest.get(f"{base}/Microsoft.Compute/virtualMachines")["value"]:
        view = rest.get(
            f"{base}/Microsoft.Compute/virtualMachines/{vm['name']}/instanceView"
        )
        power = view["statuses"][-1]["displayStatus"]
        print(f"{vm['name']:<20} {power:<14} vmId {vm['properties']['vmId']}  tags {vm.get('tags') or {}}")
    return 0


def run_in_vm(args: argparse.Namespace) -> int:
    rest, group, _base = _client(args)
    command = args.command
    if args.script is not None:
        script = args.script.read_text()
    elif command:
        script = shlex.join(command) + "\n"
    else:
        raise SystemExit("give a COMMAND after -- or --script FILE")
    view = playground.run(rest, group, args.name, script, _pairs(args.param, "--param"))
    sys.stdout.write(view.get("output") or "")
    sys.stderr.write(view.get("error") or "")
    return int(view.get("exitCode") or 0) if view["executionState"] in ("Succeeded", "Failed") else 124


def restart_vm(args: argparse.Namespace) -> int:
    rest, _group, base = _client(args)
    rest.post(f"{base}/Microsoft.Compute/virtualMachines/{args.name}/restart")
    print(f"{args.name} restarted; fstab entries were mounted again")
    return 0


def delete_vm(args: argparse.Namespace) -> int:
    rest, _group, base = _client(args)
    rest.delete(f"{base}/Microsoft.Compute/virtualMachines/{args.name}")
    rest.delete(f"{base}/Microsoft.Network/networkInterfaces/{args.name}-nic")
    print(f"{args.name} deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
