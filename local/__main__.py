"""`python -m local`: the local stack and its emulated VMs, by hand.

    python -m local dev [--port N] [--no-host] [--keep]   start everything (what `make dev` runs)
    python -m local demo                            the manual test plan, timed (what `make demo` runs)
    python -m local user add NAME [--group GROUP ...]      a person of the tenant (in groups)
    python -m local token NAME [--for arm]          an access token of NAME: for the API, or Resource Manager
    python -m local role assign NAME ROLE SCOPE [--as WHO]  a role assignment, made by WHO (alice)
    python -m local vm create NAME [--vnet V] [--subnet S] [--tag K=V ...] [--admin-user U] [--ssh-key KEY]
    python -m local vm list
    python -m local vm run NAME [--param K=V ...] [--script FILE] [-- COMMAND ...]
    python -m local vm stop|start|deallocate|restart|delete NAME

Commands other than `dev` talk to the emulator named in `.local/dev.env`, in its resource group
unless `--group` says otherwise, as alice unless `--as` names another person: the emulator allows
each only what that person's roles allow, as Azure does. VM creation posts the Event Grid event a
real VM creation posts, naming who wrote the VM, so a VM tagged for auto-attach is attached by
the running app on its own when its writer may join that storage. `vm run` waits while the VM's
agent is not ready (the first seconds after each boot), and says so on stderr when Run Command
kept only the end of the output.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import urllib.error
import uuid
from pathlib import Path
from typing import Any

from local import demo, dev, playground
from local.control import Control, ControlError
from local.emulator.compute import linux_host_name_problem
from local.rest import ArmRequestError, ArmRest

DEFAULT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAzlinLocalDevelopmentKeyOnlyForTheEmulator azlin@local"
AGENT_WAIT_SECONDS = 300  # an Azure VM's agent is ready within minutes of a boot
AGENT_POLL_SECONDS = 0.5
# The power actions of Compute (POST .../virtualMachines/{vm}/<action>), by command.
POWER_ACTIONS = {"stop": "powerOff", "start": "start", "deallocate": "deallocate"}


class CliError(Exception):
    """A mistake of the person at the keyboard, told in one line."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is the command to run in a VM, whatever options it has.
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = _parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.command = command
    try:
        return int(args.handler(args))
    except (ArmRequestError, ControlError, CliError, TimeoutError) as error:
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
    for action, handler, what in (
        ("stop", change_power, "power off a VM (Compute's powerOff: still allocated, still billed in Azure)"),
        ("start", change_power, "start a stopped or deallocated VM"),
        ("deallocate", change_power, "stop a VM and release its hardware (Compute's deallocate)"),
        ("restart", restart_vm, "restart a VM"),
        ("delete", delete_vm, "delete a VM and its NIC"),
    ):
        sub = vm.add_parser(action, help=what)
        sub.add_argument("name")
        sub.set_defaults(handler=handler, action=action)
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
            raise CliError(f"{what} {value!r} must be KEY=VALUE")
        pairs[key] = text
    return pairs


def _vm_path(rest: ArmRest, group: str, base: str, name: str) -> str:
    """The path of an existing VM; a missing one is the caller's mistake, said plainly."""
    path = f"{base}/Microsoft.Compute/virtualMachines/{name}"
    try:
        rest.get(path)
    except ArmRequestError as error:
        if error.code == "ResourceNotFound":
            raise CliError(f"VM {name} does not exist in resource group {group}") from None
        raise
    return path


def _power_state(rest: ArmRest, vm_path: str) -> str:
    """The PowerState status Azure reports in the instance view: "VM running", "VM stopped", ..."""
    statuses = rest.get(f"{vm_path}/instanceView")["statuses"]
    return str(next((s["displayStatus"] for s in statuses if s["code"].startswith("PowerState/")), "unknown"))


def create_vm(args: argparse.Namespace) -> int:
    # The VM's name is its host name too: refused before its NIC is made, not after.
    problem = linux_host_name_problem(args.name)
    if problem is not None:
        raise CliError(f"VM name {args.name!r} is not valid: {problem}")
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
        power = _power_state(rest, f"{base}/Microsoft.Compute/virtualMachines/{vm['name']}")
        print(f"{vm['name']:<20} {power:<14} vmId {vm['properties']['vmId']}  tags {vm.get('tags') or {}}")
    return 0


def _script(args: argparse.Namespace) -> str:
    if args.script is not None:
        try:
            return str(args.script.read_text())
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise CliError(f"cannot read the script {args.script}: {reason}") from None
    if args.command:
        return shlex.join(args.command) + "\n"
    raise CliError("give a COMMAND after -- or --script FILE")


def _run_when_agent_ready(rest: ArmRest, group: str, vm_path: str, script: str,
                          parameters: dict[str, str]) -> dict[str, Any]:
    """Run Command answers VMAgentNotReady for the first seconds after each boot (a new VM, a
    start, a restart): wait for the agent as a person would, not fail."""
    name = vm_path.rsplit("/", 1)[1]
    deadline = time.monotonic() + AGENT_WAIT_SECONDS
    told = False
    while True:
        try:
            return playground.run(rest, group, name, script, parameters)
        except ArmRequestError as error:
            if error.code == "OperationNotAllowed":  # how Compute refuses a VM that is not running
                power = _power_state(rest, vm_path).removeprefix("VM ")
                if power != "running":
                    raise CliError(
                        f"{error} {name} is {power}: start it with `python -m local vm start {name}`"
                    ) from None
            if error.code != "VMAgentNotReady" or time.monotonic() > deadline:
                raise
        if not told:
            print(f"waiting for the VM agent of {name} to be ready...", file=sys.stderr, flush=True)
            told = True
        time.sleep(AGENT_POLL_SECONDS)


def run_in_vm(args: argparse.Namespace) -> int:
    script = _script(args)
    parameters = _pairs(args.param, "--param")
    rest, group, base = _client(args)
    view = _run_when_agent_ready(rest, group, _vm_path(rest, group, base, args.name), script, parameters)
    sys.stdout.write(view.get("output") or "")
    sys.stderr.write(view.get("error") or "")
    # "Output is limited to the last 4,096 bytes" (azure-compute-docs virtual-machines/linux/
    # run-command.md, Restrictions); the emulator's limit is its config. A stream that fills it (but
    # for a character cut in two) has lost its beginning.
    limit = int(_control()[0].call("GET", "config")["run_command_output_bytes"])
    for stream, text in (("output", view.get("output") or ""), ("error output", view.get("error") or "")):
        if len(text.encode()) >= limit - 3:
            print(f"({stream} truncated to the last {limit} bytes by Run Command)", file=sys.stderr)
    return int(view.get("exitCode") or 0) if view["executionState"] in ("Succeeded", "Failed") else 124


def change_power(args: argparse.Namespace) -> int:
    """stop, start, deallocate: Compute's power actions, then the power state Azure reports."""
    rest, group, base = _client(args)
    path = _vm_path(rest, group, base, args.name)
    rest.post(f"{path}/{POWER_ACTIONS[args.action]}")
    print(f"{args.name}: {_power_state(rest, path)}")
    return 0


def restart_vm(args: argparse.Namespace) -> int:
    rest, group, base = _client(args)
    rest.post(f"{_vm_path(rest, group, base, args.name)}/restart")
    print(f"{args.name} restarted; fstab entries were mounted again")
    return 0


def delete_vm(args: argparse.Namespace) -> int:
    rest, group, base = _client(args)
    rest.delete(_vm_path(rest, group, base, args.name))
    rest.delete(f"{base}/Microsoft.Network/networkInterfaces/{args.name}-nic")
    print(f"{args.name} deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
