"""`azlin-storage`: the service's command line. Each command is one call of the HTTP API (the
contract in /api/openapi.json); changes wait for their operation with a live progress bar unless
--no-wait, and every command prints the API's JSON as it is with --json."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from . import show
from .api import Api, ApiError
from .settings import Config, NotConfigured, load, save

F = TypeVar("F", bound=Callable[..., Any])

STORAGE_COLUMNS = [("name", "name"), ("resource group", "resourceGroup"), ("region", "region"),
                   ("tier", "tier"), ("size GiB", "sizeGb"), ("billing", "billing"), ("state", "state")]
OPERATION_COLUMNS = [("id", "id"), ("kind", "kind"), ("target", "target"), ("status", "status"),
                     ("step", "progress.step"), ("created", "createdAt")]
ATTACHMENT_COLUMNS = [("vm", "vm"), ("resource group", "resourceGroup"), ("health", "health"),
                      ("last verified", "lastVerifiedAt"), ("last error", "lastError")]


class Session:
    """The API, configured on first use (`login` needs none)."""

    def __init__(self) -> None:
        self._api: Api | None = None

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = Api(load())
        return self._api


def command(func: F) -> F:
    """--json on the command; the service's errors printed in its words, exit status 1."""

    def run(session: Session, /, *args: Any, as_json: bool, **kwargs: Any) -> Any:
        try:
            return func(session.api, *args, as_json=as_json, **kwargs)
        except NotConfigured as problem:
            show.err.print(f"[bold red]error[/] {problem}", highlight=False)
            raise SystemExit(1) from None
        except ApiError as problem:
            if as_json:
                show.as_json({"error": {"code": problem.code, "message": problem.message,
                                        "causes": problem.causes, "try": problem.hint}})
            show.error(problem)
            raise SystemExit(1) from None

    run.__name__, run.__doc__ = func.__name__, func.__doc__  # click names the command and helps from them
    json_flag = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer as it is.")
    return json_flag(click.pass_obj(run))  # type: ignore[return-value]


def group_option(func: F) -> F:
    return click.option("-g", "--resource-group", help="Resource group (default: the service's).")(func)


def wait_option(func: F) -> F:
    return click.option("--no-wait", is_flag=True, help="Return once accepted; the operation runs on.")(func)


def submitted(api: Api, method: str, path: str, body: Any = None, *,
              query: dict[str, str | None] | None = None, no_wait: bool, as_json: bool) -> None:
    """A change: accepted (202) with its operation, then waited for unless --no-wait."""
    _, operation, _ = api.call(method, path, body, query)
    if not no_wait:
        operation = show.wait(operation, lambda op: api.get(f"/operations/{op}"), quiet=as_json)
    if as_json:
        show.as_json(operation)
    else:
        show.out.print(show.operation_line(operation), highlight=False)
        if operation["status"] not in show.ENDED:
            show.out.print(f"follow it with: azlin-storage operations show {operation['id']}",
                           highlight=False)
    failure = operation.get("error")
    if operation["status"] == "Failed" and isinstance(failure, dict):
        show.error(ApiError(0, failure.get("code", "Failed"), failure.get("message", ""),
                            failure.get("causes") or [], failure.get("try")))
        raise SystemExit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="azlin-storage-service")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Shared Linux home directories on Azure Files NFS, for fleets of Azure VMs."""
    ctx.obj = Session()


@cli.command()
@click.option("--api-url", required=True, help="The API's base URL, ending in /api.")
@click.option("--scope", required=True, help="The API's scope: api://<API client id>/.default.")
@click.option("--tenant", help="Your Entra ID tenant (default: your account's).")
@click.option("--device-code", is_flag=True, help="Sign in with a code on another device (a headless box).")
def login(api_url: str, scope: str, tenant: str | None, device_code: bool) -> None:
    """Save the API's URL and sign in to it (azure-identity)."""
    from . import signin

    config = Config(api_url.rstrip("/"), scope=scope, tenant=tenant, device_code=device_code)
    try:
        who = signin.sign_in(config)
    except Exception as problem:  # azure-identity's errors say what to do
        show.err.print(f"[bold red]error[/] could not sign in: {problem}", highlight=False)
        raise SystemExit(1) from None
    show.out.print(f"{who}; settings saved in {save(config)}", highlight=False)


@cli.command("config")
@command
def config_(api: Api, *, as_json: bool) -> None:
    """Which API this CLI talks to, and where that came from."""
    value = {"apiUrl": api.config.api_url, "source": api.config.source, "scope": api.config.scope}
    show.as_json(value) if as_json else show.fields(value)


# -- storage ----------------------------------------------------------------------------------------

@cli.group()
def storage() -> None:
    """Create, inspect, resize and delete NFS storage."""


@storage.command("create")
@click.argument("name")
@group_option
@click.option("--size", type=int, help="GiB (default 100).")
@click.option("--tier", type=click.Choice(["Premium"]), help="Azure Files NFS runs on Premium only.")
@click.option("--redundancy", type=click.Choice(["LRS", "ZRS"]))
@click.option("--billing", type=click.Choice(["provisionedV2", "provisionedV1"]))
@click.option("--region")
@click.option("--vnet", help="Your VNet for the private endpoint (default: the service's).")
@click.option("--subnet")
@click.option("--encryption-in-transit", type=click.Choice(["required", "off"]))
@wait_option
@command
def storage_create(api: Api, name: str, resource_group: str | None, no_wait: bool, as_json: bool,
                   **settings: Any) -> None:
    """Create storage NAME (the same request again repairs it)."""
    names = {"size": "size", "tier": "tier", "redundancy": "redundancy", "billing": "billing",
             "region": "region", "vnet": "vnet", "subnet": "subnet",
             "encryption_in_transit": "encryptionInTransit"}
    body = {"name": name, **({"resourceGroup": resource_group} if resource_group else {}),
            **{names[k]: v for k, v in settings.items() if v is not None}}
    submitted(api, "POST", "/storage", body, no_wait=no_wait, as_json=as_json)


@storage.command("list")
@group_option
@command
def storage_list(api: Api, resource_group: str | None, *, as_json: bool) -> None:
    """Storage this service made."""
    items, link = [], "/storage"
    while link:
        page = api.get(link, resourceGroup=resource_group) if link == "/storage" else api.get(link)
        items += page["value"]
        link = page.get("nextLink")
    show.as_json({"value": items}) if as_json else show.table(items, STORAGE_COLUMNS)


@storage.command("show")
@click.argument("name")
@group_option
@command
def storage_show(api: Api, name: str, resource_group: str | None, *, as_json: bool) -> None:
    """One storage (or its create, while under way)."""
    value = api.get(f"/storage/{name}", resourceGroup=resource_group)
    show.as_json(value) if as_json else show.fields(value)


@storage.command("status")
@click.argument("name")
@group_option
@command
def storage_status(api: Api, name: str, resource_group: str | None, *, as_json: bool) -> None:
    """Usage, attached VMs and their health, monthly cost."""
    value = api.get(f"/storage/{name}/status", resourceGroup=resource_group)
    if as_json:
        show.as_json(value)
        return
    show.fields({**value["info"], **{k: v for k, v in value.items() if k not in ("info", "attachments")}})
    show.table(value["attachments"], ATTACHMENT_COLUMNS, title="attached VMs")


@storage.command("resize")
@click.argument("name")
@click.option("--size", type=int, required=True, help="GiB.")
@group_option
@wait_option
@command
def storage_resize(api: Api, name: str, size: int, resource_group: str | None, no_wait: bool,
                   as_json: bool) -> None:
    """Grow storage NAME (or shrink it, where Azure allows)."""
    submitted(api, "PATCH", f"/storage/{name}", {"size": size}, query={"resourceGroup": resource_group},
              no_wait=no_wait, as_json=as_json)


@storage.command("delete")
@click.argument("name")
@group_option
@click.option("--force", is_flag=True, help="Detach attached VMs safely first.")
@click.option("--mode", type=click.Choice(["copy", "restore"]), help="With --force: how each VM is detached.")
@click.option("--purge", is_flag=True, help="Delete for good a storage deleted already.")
@wait_option
@command
def storage_delete(api: Api, name: str, resource_group: str | None, force: bool, mode: str | None,
                   purge: bool, no_wait: bool, as_json: bool) -> None:
    """Delete storage NAME (kept for undelete until its window ends, unless --purge)."""
    query = {"resourceGroup": resource_group, "force": "true" if force else None, "mode": mode,
             "purge": "true" if purge else None}
    submitted(api, "DELETE", f"/storage/{name}", query=query, no_wait=no_wait, as_json=as_json)


@storage.command("undelete")
@click.argument("name")
@group_option
@wait_option
@command
def storage_undelete(api: Api, name: str, resource_group: str | None, no_wait: bool, as_json: bool) -> None:
    """Bring back storage NAME within its window."""
    submitted(api, "POST", f"/storage/{name}/undelete", {}, query={"resourceGroup": resource_group},
              no_wait=no_wait, as_json=as_json)


# -- VMs ------------------------------------------------------------------------------------------

@cli.command()
@click.argument("vm")
@click.option("-s", "--storage", "storage_name", required=True, help="The storage to be the VM's home.")
@group_option
@click.option("--mount-point", help="Default: the VM admin user's home.")
@wait_option
@command
def attach(api: Api, vm: str, storage_name: str, resource_group: str | None, mount_point: str | None,
           no_wait: bool, as_json: bool) -> None:
    """Make VM's home directory the shared one of a storage."""
    body = {"vm": vm, **({"resourceGroup": resource_group} if resource_group else {}),
            **({"mountPoint": mount_point} if mount_point else {})}
    submitted(api, "POST", f"/storage/{storage_name}/attachments", body, no_wait=no_wait, as_json=as_json)


@cli.command()
@click.argument("vm")
@group_option
@click.option("--mode", type=click.Choice(["copy", "restore"]),
              help="copy (default): the VM keeps the shared files; restore: its pre-attach home.")
@wait_option
@command
def detach(api: Api, vm: str, resource_group: str | None, mode: str | None, no_wait: bool,
           as_json: bool) -> None:
    """Give VM a home directory of its own again."""
    submitted(api, "DELETE", f"/vms/{vm}/attachment", query={"resourceGroup": resource_group, "mode": mode},
              no_wait=no_wait, as_json=as_json)


@cli.command()
@click.argument("storage_name", metavar="STORAGE", required=False)
@click.option("--vm", help="One VM's attachment instead.")
@group_option
@command
def vms(api: Api, storage_name: str | None, vm: str | None, resource_group: str | None, *,
        as_json: bool) -> None:
    """The VMs attached to STORAGE, with their health; or one VM's attachment (--vm)."""
    if vm:
        value = api.get(f"/vms/{vm}/attachment", resourceGroup=resource_group)
        show.as_json(value) if as_json else show.fields(value)
        return
    if not storage_name:
        raise click.UsageError("name a STORAGE, or a VM with --vm")
    attached = api.get(f"/storage/{storage_name}/status", resourceGroup=resource_group)["attachments"]
    show.as_json({"value": attached}) if as_json else show.table(attached, ATTACHMENT_COLUMNS)


# -- operations, costs, digests -------------------------------------------------------------------

@cli.group(invoke_without_command=True)
@click.pass_context
def operations(ctx: click.Context) -> None:
    """Operations you asked for (or of a storage or a VM), newest first."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(operations_list)


@operations.command("list")
@click.option("--storage", "storage_name")
@click.option("--vm")
@group_option
@click.option("--status", help="Comma-separated: Pending,Running,Succeeded,Failed.")
@click.option("--kind", help="Comma-separated, e.g. AttachVm,CreateStorage.")
@click.option("--top", type=int, default=20, show_default=True)
@command
def operations_list(api: Api, storage_name: str | None = None, vm: str | None = None,
                    resource_group: str | None = None, status: str | None = None, kind: str | None = None,
                    top: int = 20, *, as_json: bool = False) -> None:
    page = api.get("/operations", storage=storage_name, vm=vm, resourceGroup=resource_group if vm else None,
                   status=status, kind=kind, **{"$top": str(top)})
    if as_json:
        show.as_json(page)
        return
    show.table(page["value"], OPERATION_COLUMNS)
    if page.get("nextLink"):
        show.out.print("(more: raise --top, or narrow with --status/--kind)", highlight=False)


@operations.command("show")
@click.argument("operation_id", metavar="ID")
@click.option("--wait", "wait_for_end", is_flag=True, help="Wait for it to end.")
@command
def operations_show(api: Api, operation_id: str, wait_for_end: bool, *, as_json: bool) -> None:
    """One operation: status, step, result or error."""
    operation = api.get(f"/operations/{operation_id}")
    if wait_for_end:
        operation = show.wait(operation, lambda op: api.get(f"/operations/{op}"), quiet=as_json)
    show.as_json(operation) if as_json else show.fields(operation)


@cli.command()
@group_option
@command
def costs(api: Api, resource_group: str | None, *, as_json: bool) -> None:
    """Monthly costs of storage and VMs, with where each price came from."""
    value = api.get("/costs", resourceGroup=resource_group)
    show.as_json(value) if as_json else show.fields(value)


@cli.command()
@click.option("--today", is_flag=True, help="Today's digest, made now if the day has none yet.")
@click.option("--force", is_flag=True, help="Make today's again from the figures now (a new revision).")
@command
def digest(api: Api, today: bool, force: bool, *, as_json: bool) -> None:
    """The latest cost digest (or today's, made on demand)."""
    if today or force:
        value = api.call("POST", "/digests", query={"force": "true" if force else None})[1]
    else:
        value = api.get("/digests/latest")
    if as_json:
        show.as_json(value)
    else:
        show.out.print(value.get("markdown") or "", highlight=False)


def main() -> None:
    cli(prog_name="azlin-storage")
