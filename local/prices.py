"""A stand-in for the Azure Retail Prices API on this machine: the same envelope (`Items`,
`NextPageLink`, `Count`, `BillingCurrency`), the same OData `$filter` of `field eq 'value'` terms
joined by `and`, and pages of at most `page_size` items (Azure's are 100).

The catalog below has the meters the service looks for plus the neighbours it must not pick
(Windows, Spot, reservations, snapshots). Its prices are made up, chosen to look like Azure's:
nothing here is a real price. `make dev` and the tests use it; nothing deployed does.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

_FIELDS = {"priceType": "type"}  # filter names that differ from the item's field
_TERM = re.compile(r"^\s*(\w+) eq '([^']*)'\s*$")


def _meter(**fields: Any) -> dict[str, Any]:
    meter_id = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]
    return {"currencyCode": "USD", "tierMinimumUnits": 0.0, "type": "Consumption",
            "isPrimaryMeterRegion": True, "effectiveStartDate": "2024-01-01T00:00:00Z",
            "meterId": meter_id, **fields}


def _storage_meters(region: str, lrs: float, zrs: float) -> list[dict[str, Any]]:
    common = {"serviceName": "Storage", "serviceFamily": "Storage", "productName": "Premium Files",
              "armRegionName": region, "location": region}
    return [
        _meter(**common, skuName="Premium LRS", meterName="Premium LRS Provisioned", retailPrice=lrs,
               unitPrice=lrs, unitOfMeasure="1 GiB/Month"),
        _meter(**common, skuName="Premium ZRS", meterName="Premium ZRS Provisioned", retailPrice=zrs,
               unitPrice=zrs, unitOfMeasure="1 GiB/Month"),
        _meter(**common, skuName="Premium LRS", meterName="Premium LRS Snapshots", retailPrice=0.12,
               unitPrice=0.12, unitOfMeasure="1 GiB/Month"),
    ]


def _files_v2_meters(region: str, gib_hour: float, iops_hour: float,
                     mibps_hour: float) -> list[dict[str, Any]]:
    """SSD provisioned v2 (`Azure Files Provisioned v2`): storage, IOPS and throughput by the hour,
    with the included ("Free") and overflow meters beside them, and a Premium SSD v2 disk meter of
    a look-alike name that must not be taken for a file share's."""
    common = {"serviceName": "Storage", "serviceFamily": "Storage",
              "productName": "Azure Files Provisioned v2", "armRegionName": region, "location": region}
    items = []
    for redundancy, factor in (("LRS", 1.0), ("ZRS", 1.25)):
        sku = f"SSD {redundancy}"
        for part, price, unit in (("Storage", gib_hour, "1 GiB/Hour"), ("IOPS", iops_hour, "1/Hour"),
                                  ("Throughput MiBPS", mibps_hour, "1/Hour")):
            amount = round(price * factor, 8)
            items.append(_meter(**common, skuName=sku, meterName=f"{sku} Provisioned {part}",
                                retailPrice=amount, unitPrice=amount, unitOfMeasure=unit))
            items.append(_meter(**common, skuName=sku, meterName=f"{sku} Provisioned {part} Free",
                                retailPrice=0.0, unitPrice=0.0, unitOfMeasure=unit))
        items.append(_meter(**common, skuName=sku, meterName=f"{sku} Overflow Snapshot Usage",
                            retailPrice=0.09, unitPrice=0.09, unitOfMeasure="1 GiB/Month"))
    items.append(_meter(serviceName="Storage", serviceFamily="Storage", productName="Azure Premium SSD v2",
                        armRegionName=region, location=region, skuName="Premium LRS",
                        meterName="Premium LRS Provisioned IOPS", retailPrice=0.0000001, unitPrice=0.0000001,
                        unitOfMeasure="1/Hour"))
    return items


def _vm_meters(region: str, size: str, linux_hour: float) -> list[dict[str, Any]]:
    short = size.removeprefix("Standard_").replace("_", " ")
    common = {"serviceName": "Virtual Machines", "serviceFamily": "Compute", "armRegionName": region,
              "location": region, "armSkuName": size}
    return [
        _meter(**common, productName="Virtual Machines Series Windows", skuName=short,
               meterName=short, retailPrice=round(linux_hour * 1.8, 4), unitOfMeasure="1 Hour"),
        _meter(**common, productName="Virtual Machines Series", skuName=f"{short} Spot",
               meterName=f"{short} Spot", retailPrice=round(linux_hour * 0.2, 4), unitOfMeasure="1 Hour"),
        _meter(**common, productName="Virtual Machines Series", skuName=short, meterName=short,
               retailPrice=round(linux_hour * 5000, 2), unitOfMeasure="1 Hour", type="Reservation",
               reservationTerm="1 Year"),
        _meter(**common, productName="Virtual Machines Series", skuName=short, meterName=short,
               retailPrice=linux_hour, unitPrice=linux_hour, unitOfMeasure="1 Hour"),
    ]


CATALOG: tuple[dict[str, Any], ...] = (
    *_storage_meters("westeurope", 0.18, 0.225),
    *_storage_meters("eastus", 0.16, 0.2),
    *_files_v2_meters("westeurope", 0.000137, 0.0000068, 0.0000548),
    *_files_v2_meters("eastus", 0.000123, 0.0000062, 0.0000493),
    *_vm_meters("westeurope", "Standard_B2s", 0.0456),
    *_vm_meters("westeurope", "Standard_D2s_v5", 0.105),
    *_vm_meters("eastus", "Standard_B2s", 0.0416),
)


def matches(item: dict[str, Any], odata_filter: str) -> bool:
    """`a eq 'x' and b eq 'y'`; any other expression matches nothing, as a 400 would."""
    parts = re.split(r"\s+and\s+", odata_filter.strip()) if odata_filter else []
    terms = [_TERM.match(term) for term in parts]
    if any(term is None for term in terms):
        return False
    return all(str(item.get(_FIELDS.get(term.group(1), term.group(1)))) == term.group(2)
               for term in terms if term is not None)


class RetailPricesStandIn:
    """`up` False answers 503; `stop()` makes it unreachable. `requests` records each query."""

    def __init__(self, items: Iterable[dict[str, Any]] = CATALOG, page_size: int = 100) -> None:
        self.items = list(items)
        self.page_size = page_size
        self.up = True
        self.requests: list[dict[str, list[str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                outer.requests.append(query)
                status, body = outer.answer(query)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/retail/prices"
        threading.Thread(target=self.server.serve_forever, name="retail-prices", daemon=True).start()

    def answer(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if not self.up:
            return 503, {"Error": {"Code": "ServiceUnavailable", "Message": "stand-in is down"}}
        odata_filter = (query.get("$filter") or [""])[0]
        skip = int((query.get("$skip") or ["0"])[0])
        found = [item for item in self.items if matches(item, odata_filter)]
        page = found[skip:skip + self.page_size]
        more = skip + self.page_size < len(found)
        next_link = f"{self.url}?{urlencode({'$filter': odata_filter, '$skip': skip + self.page_size})}"
        return 200, {"BillingCurrency": "USD", "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
                     "Items": page, "NextPageLink": next_link if more else None, "Count": len(page)}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
