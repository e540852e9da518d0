"""The portal-facing HTTP API (routes under /api). Every route but health and the OpenAPI
document acts as its caller (`authenticated`: an Entra ID bearer token, validated first); each
function parses its request into domain values, calls one service with the caller, and maps the
result; `guarded` maps every error to the contract's error shape. Mutations answer 202 with the
operation to poll."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from . import core
from .http import (
    accepted,
    authenticated,
    guarded,
    idempotency_key,
    json_response,
    operation_link,
    page_response,
    query,
    read_json,
    resource_json,
    route,
    to_json,
)

if TYPE_CHECKING:
    from shared.domain.identity import Caller
    from shared.ports import Probe

bp = func.Blueprint()


@bp.route(route="storage", methods=["POST"])
@authenticated
def create_storage(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    app = core.bootstrap.container()
    command = core.requests.create_storage(read_json(req), app.settings.defaults)
    return accepted(req, app.storage.request_create(caller, command, idempotency_key(req)))


@bp.route(route="storage", methods=["GET"])
@authenticated
def list_storage(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    wanted = core.requests.list_query(query(req))
    page = core.bootstrap.container().storage.list(caller, wanted.resource_group, wanted.page_size,
                                                   wanted.continuation)
    filters = {"resourceGroup": wanted.resource_group} if wanted.resource_group else {}
    return page_response(req, "/api/storage", page, filters, wanted.page_size)


@bp.route(route="storage/{name}", methods=["GET"])
@authenticated
def get_storage(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    return json_response(resource_json(req, core.bootstrap.container().storage.get_or_creating(caller, ref)))


@bp.route(route="storage/{name}", methods=["PATCH"])
@authenticated
def resize_storage(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    size, iops, throughput = core.requests.resize(read_json(req))
    return accepted(req, core.bootstrap.container().storage.request_resize(
        caller, ref, size, idempotency_key(req), iops=iops, throughput_mibps=throughput))


@bp.route(route="storage/{name}", methods=["DELETE"])
@authenticated
def delete_storage(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    force = core.requests.optional_flag(query(req), "force")
    mode = core.requests.detach_mode(query(req))
    purge = core.requests.optional_flag(query(req), "purge")
    return accepted(req, core.bootstrap.container().storage.request_delete(caller, ref, force,
                                                                           idempotency_key(req), mode, purge))


@bp.route(route="storage/{name}/undelete", methods=["POST"])
@authenticated
def undelete_storage(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    return accepted(req, core.bootstrap.container().data_protection.request_undelete(caller, ref,
                                                                                    idempotency_key(req)))


@bp.route(route="storage/{name}/snapshots", methods=["GET"])
@authenticated
def list_snapshots(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    snapshots = core.bootstrap.container().data_protection.snapshots(caller, ref)
    return json_response({"value": [to_json(s) for s in snapshots]})


@bp.route(route="storage/{name}/snapshots", methods=["POST"])
@authenticated
def take_snapshot(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    return json_response(to_json(core.bootstrap.container().data_protection.take(caller, ref)), 201)


@bp.route(route="storage/{name}/snapshots/{snapshot}/restore", methods=["POST"])
@authenticated
def restore_from_snapshot(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    app = core.bootstrap.container()
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    snapshot = core.requests.snapshot(route(req, "snapshot"))
    path, vm = core.requests.restore(read_json(req), app.settings.defaults)
    return accepted(req, app.data_protection.request_restore(caller, ref, snapshot, path, vm,
                                                             idempotency_key(req)))


@bp.route(route="storage/{name}/access", methods=["GET"])
@authenticated
def get_storage_access(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    return json_response(to_json(core.bootstrap.container().storage.access_of(caller, ref)))


@bp.route(route="storage/{name}/access", methods=["PUT"])
@authenticated
def set_storage_access(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    owners, members = core.requests.storage_access(read_json(req))
    return json_response(to_json(core.bootstrap.container().storage.set_access(caller, ref, owners, members)))


@bp.route(route="storage/{name}/status", methods=["GET"])
@authenticated
def storage_status(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    return json_response(to_json(core.bootstrap.container().storage.status(caller, ref)))


@bp.route(route="storage/{name}/cloud-init", methods=["GET"])
@authenticated
def storage_cloud_init(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    app = core.bootstrap.container()
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    user, mount_point = core.requests.cloud_init_user(query(req), app.settings.defaults)
    text = app.storage.cloud_init(caller, ref, user, mount_point)
    return func.HttpResponse(text, status_code=200, mimetype="text/cloud-config", charset="utf-8")


@bp.route(route="storage/{name}/attachments", methods=["POST"])
@authenticated
def attach_vm(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    app = core.bootstrap.container()
    command = core.requests.attach_vm(route(req, "name"), read_json(req), app.settings.defaults)
    return accepted(req, app.attachment.request_attach(caller, command, idempotency_key(req)))


@bp.route(route="vms/{vm}/attachment", methods=["GET"])
@authenticated
def get_attachment(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    app = core.bootstrap.container()
    ref = core.requests.vm_ref(route(req, "vm"), query(req), app.settings.defaults)
    if core.requests.optional_flag(query(req), "verify"):  # the last check, and a new one queued
        attachment, submission = app.attachment.verifying(caller, ref)
        return json_response({**to_json(attachment), "verifying": operation_link(req, submission)})
    return json_response(resource_json(req, app.attachment.get_or_attaching(caller, ref)))


@bp.route(route="vms/{vm}/attachment/verify", methods=["POST"])
@authenticated
def verify_attachment(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    app = core.bootstrap.container()
    ref = core.requests.vm_ref(route(req, "vm"), query(req), app.settings.defaults)
    return accepted(req, app.attachment.request_verify(caller, ref, idempotency_key(req)))


@bp.route(route="vms/{vm}/attachment", methods=["DELETE"])
@authenticated
def detach_vm(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    app = core.bootstrap.container()
    ref = core.requests.vm_ref(route(req, "vm"), query(req), app.settings.defaults)
    command = core.requests.detach_vm(ref, query(req))
    return accepted(req, app.attachment.request_detach(caller, command, idempotency_key(req)))


@bp.route(route="resource-groups/{group}/default-storage", methods=["PUT"])
@authenticated
def set_default_storage(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    group, storage = core.requests.default_storage(route(req, "group"), read_json(req))
    return json_response(to_json(core.bootstrap.container().default_storage.set(caller, group, storage)))


@bp.route(route="resource-groups/{group}/default-storage", methods=["GET"])
@authenticated
def get_default_storage(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    group = core.requests.resource_group(route(req, "group"))
    return json_response(to_json(core.bootstrap.container().default_storage.get(caller, group)))


@bp.route(route="resource-groups/{group}/default-storage", methods=["DELETE"])
@authenticated
def clear_default_storage(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    group = core.requests.resource_group(route(req, "group"))
    core.bootstrap.container().default_storage.clear(caller, group)
    return func.HttpResponse(status_code=204)


@bp.route(route="operations/{id}", methods=["GET"])
@authenticated
def get_operation(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    return json_response(to_json(core.bootstrap.container().operation_reads.get(caller, route(req, "id"))))


@bp.route(route="operations", methods=["GET"])
@authenticated
def list_operations(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    app = core.bootstrap.container()
    wanted = core.requests.operations_query(query(req), app.settings.defaults)
    reads, only = app.operation_reads, wanted.only
    filters = {name: value for name, value in query(req).items() if name in ("status", "kind")}
    if wanted.vm is not None:
        vm = wanted.vm
        page = reads.about_vm(caller, vm.resource_group, vm.vm, wanted.page_size, wanted.continuation, only)
        filters |= {"vm": vm.vm, "resourceGroup": vm.resource_group}
    elif wanted.storage is not None:
        page = reads.about_storage(caller, wanted.storage, wanted.page_size, wanted.continuation, only)
        filters |= {"storage": wanted.storage}
    else:
        page = reads.asked_by(caller, wanted.page_size, wanted.continuation, only)
    return page_response(req, "/api/operations", page, filters, wanted.page_size)


@bp.route(route="costs", methods=["GET"])
@authenticated
def get_costs(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    group = core.requests.list_query(query(req)).resource_group
    return json_response(to_json(core.bootstrap.container().costs.report_for(caller, group)))


@bp.route(route="digests/latest", methods=["GET"])
@authenticated
def latest_digest(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    digest = core.bootstrap.container().digests.latest(caller)
    return json_response({"digest": to_json(digest), "markdown": core.digests.render_markdown(digest)})


@bp.route(route="digests", methods=["POST"])
@authenticated
def make_digest(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    """Today's digest: 200 the stored one; 201 when made now (none yet, or `force=true`)."""
    force = core.requests.optional_flag(query(req), "force")
    digest, made = core.bootstrap.container().digests.make_today(caller, force=force)
    return json_response({"digest": to_json(digest), "markdown": core.digests.render_markdown(digest)},
                         201 if made else 200)


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@guarded
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness by default (no dependency is called); `?ready=true` also asks each dependency."""
    if not core.requests.optional_flag(query(req), "ready"):
        return json_response({"status": "ok"})
    checks = {probe.name: _probe(probe) for probe in core.bootstrap.container().probes}
    healthy = all(result == "ok" for result in checks.values())
    return json_response({"status": "ok" if healthy else "unavailable", "checks": checks},
                         200 if healthy else 503, {} if healthy else {"Retry-After": "5"})


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@guarded
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """The contract of this deployment: its settings decide, for one, whether resourceGroup is required."""
    return json_response(core.openapi.document(core.bootstrap.container().settings.defaults))


def _probe(probe: Probe) -> str:
    try:
        probe.check()
    except core.errors.ServiceError as err:
        return err.message
    except Exception as err:  # readiness reports any failure; it is never a 500
        return f"{type(err).__name__}"
    return "ok"
