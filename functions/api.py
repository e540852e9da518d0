"""The portal-facing HTTP API (routes under /api). Each function parses its request into domain
values, calls one service, and maps the result; `guarded` maps every error to the contract's
error shape. Mutations answer 202 with the operation to poll."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from . import core
from .http import (
    absolute,
    accepted,
    guarded,
    idempotency_key,
    json_response,
    query,
    read_json,
    route,
    to_json,
)

if TYPE_CHECKING:
    from shared.ports import Probe

bp = func.Blueprint()


@bp.route(route="storage", methods=["POST"])
@guarded
def create_storage(req: func.HttpRequest) -> func.HttpResponse:
    app = core.bootstrap.container()
    command = core.requests.create_storage(read_json(req), app.settings.defaults)
    return accepted(req, app.storage.request_create(command, idempotency_key(req)))


@bp.route(route="storage", methods=["GET"])
@guarded
def list_storage(req: func.HttpRequest) -> func.HttpResponse:
    wanted = core.requests.list_query(query(req))
    page = core.bootstrap.container().storage.list(wanted.resource_group, wanted.page_size,
                                                   wanted.continuation)
    body: dict[str, object] = {"value": [to_json(storage) for storage in page.items]}
    if page.continuation:
        filters = {"resourceGroup": wanted.resource_group} if wanted.resource_group else {}
        body["nextLink"] = absolute(req, "/api/storage", {**filters, "$top": str(wanted.page_size),
                                                          "$skipToken": page.continuation})
    return json_response(body)


@bp.route(route="storage/{name}", methods=["GET"])
@guarded
def get_storage(req: func.HttpRequest) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    return json_response(to_json(core.bootstrap.container().storage.get(ref)))


@bp.route(route="storage/{name}", methods=["PATCH"])
@guarded
def resize_storage(req: func.HttpRequest) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    size = core.requests.resize_size(read_json(req))
    return accepted(req, core.bootstrap.container().storage.request_resize(ref, size, idempotency_key(req)))


@bp.route(route="storage/{name}", methods=["DELETE"])
@guarded
def delete_storage(req: func.HttpRequest) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    force = core.requests.optional_flag(query(req), "force")
    mode = core.requests.detach_mode(query(req))
    return accepted(req, core.bootstrap.container().storage.request_delete(ref, force, idempotency_key(req),
                                                                           mode))


@bp.route(route="storage/{name}/status", methods=["GET"])
@guarded
def storage_status(req: func.HttpRequest) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    return json_response(to_json(core.bootstrap.container().storage.status(ref)))


@bp.route(route="storage/{name}/cloud-init", methods=["GET"])
@guarded
def storage_cloud_init(req: func.HttpRequest) -> func.HttpResponse:
    ref = core.requests.storage_ref(route(req, "name"), query(req))
    user, mount_point = core.requests.cloud_init_user(query(req))
    text = core.bootstrap.container().storage.cloud_init(ref, user, mount_point)
    return func.HttpResponse(text, status_code=200, mimetype="text/cloud-config", charset="utf-8")


@bp.route(route="storage/{name}/attachments", methods=["POST"])
@guarded
def attach_vm(req: func.HttpRequest) -> func.HttpResponse:
    app = core.bootstrap.container()
    command = core.requests.attach_vm(route(req, "name"), read_json(req), app.settings.defaults)
    return accepted(req, app.attachment.request_attach(command, idempotency_key(req)))


@bp.route(route="vms/{vm}/attachment", methods=["GET"])
@guarded
def get_attachment(req: func.HttpRequest) -> func.HttpResponse:
    app = core.bootstrap.container()
    ref = core.requests.vm_ref(route(req, "vm"), query(req), app.settings.defaults)
    if core.requests.optional_flag(query(req), "verify"):
        return json_response(to_json(app.mounts.verify(ref)))
    return json_response(to_json(app.attachment.get(ref)))


@bp.route(route="vms/{vm}/attachment", methods=["DELETE"])
@guarded
def detach_vm(req: func.HttpRequest) -> func.HttpResponse:
    app = core.bootstrap.container()
    ref = core.requests.vm_ref(route(req, "vm"), query(req), app.settings.defaults)
    command = core.requests.detach_vm(ref, query(req))
    return accepted(req, app.attachment.request_detach(command, idempotency_key(req)))


@bp.route(route="resource-groups/{group}/default-storage", methods=["PUT"])
@guarded
def set_default_storage(req: func.HttpRequest) -> func.HttpResponse:
    group, storage = core.requests.default_storage(route(req, "group"), read_json(req))
    return json_response(to_json(core.bootstrap.container().default_storage.set(group, storage)))


@bp.route(route="resource-groups/{group}/default-storage", methods=["GET"])
@guarded
def get_default_storage(req: func.HttpRequest) -> func.HttpResponse:
    group = core.requests.resource_group(route(req, "group"))
    return json_response(to_json(core.bootstrap.container().default_storage.get(group)))


@bp.route(route="resource-groups/{group}/default-storage", methods=["DELETE"])
@guarded
def clear_default_storage(req: func.HttpRequest) -> func.HttpResponse:
    core.bootstrap.container().default_storage.clear(core.requests.resource_group(route(req, "group")))
    return func.HttpResponse(status_code=204)


@bp.route(route="operations/{id}", methods=["GET"])
@guarded
def get_operation(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(to_json(core.bootstrap.container().intake.get(route(req, "id"))))


@bp.route(route="costs", methods=["GET"])
@guarded
def get_costs(req: func.HttpRequest) -> func.HttpResponse:
    group = core.requests.list_query(query(req)).resource_group
    return json_response(to_json(core.bootstrap.container().costs.report(group)))


@bp.route(route="digests/latest", methods=["GET"])
@guarded
def latest_digest(req: func.HttpRequest) -> func.HttpResponse:
    digest = core.bootstrap.container().digests.latest()
    return json_response({"digest": to_json(digest), "markdown": core.digests.render_markdown(digest)})


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
    return json_response(core.openapi.document())


def _probe(probe: Probe) -> str:
    try:
        probe.check()
    except core.errors.ServiceError as err:
        return err.message
    except Exception as err:  # readiness reports any failure; it is never a 500
        return f"{type(err).__name__}"
    return "ok"
