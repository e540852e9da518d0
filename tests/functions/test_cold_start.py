"""Cold start: indexing the app must not import SDKs (azure.mgmt.network alone costs about 1 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(statement: str) -> list[str]:
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60)
    return list(json.loads(out.stdout))


def test_importing_the_app_imports_no_azure_mgmt_module() -> None:
    modules = loaded_after("import function_app; function_app.app.get_functions()")
    assert [m for m in modules if m.startswith("azure.mgmt")] == []


def test_importing_the_app_imports_no_azure_sdk_beyond_azure_functions() -> None:
    modules = loaded_after("import function_app")
    sdk = [m for m in modules if m.startswith("azure.") and not m.startswith("azure.functions")]
    assert sdk == []
    assert [m for m in modules if m.startswith("opentelemetry")] == []  # tracing loads on first use
    # Token validation loads PyJWT and cryptography with the first request, not at import.
    assert [m for m in modules if m.split(".")[0] in ("jwt", "cryptography", "msal")] == []


def test_serving_requests_and_running_the_worker_import_no_azure_mgmt_module() -> None:
    """Tables and queues are needed from the first request; Resource Manager SDKs only by the
    services that call Azure, which load them on first use."""
    modules = loaded_after(
        "import os\n"
        "os.environ.update(AzureWebJobsStorage='UseDevelopmentStorage=true',"
        " AZURE_SUBSCRIPTION_ID='6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11')\n"
        "from shared.bootstrap import container\n"
        "c = container(); c.intake; c.storage; c.attachment; c.worker; c.queue.client\n"
        "c.queue.trace()\n"
        "from functions import core; core.openapi.document()")
    assert [m for m in modules if m.startswith("azure.mgmt")] == []
    assert "azure.data.tables" in modules  # the check above would pass vacuously otherwise
    # No APPLICATIONINSIGHTS_CONNECTION_STRING: no tracing, and nothing of it imported.
    assert [m for m in modules if m.startswith(("opentelemetry", "azure.monitor"))] == []
