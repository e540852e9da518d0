"""The deployment templates say what issue 7 asks: every Bicep file parses (pycep-parser: the Bicep
compiler itself cannot be installed here), a Flex Consumption app on identity-based storage, the
Event Grid filter, custom roles holding exactly the operations the adapters call, no broad
built-in role and no secret in the app settings."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser

from local.host import FunctionIndex
from shared.adapters.arm_operations import ARM_OPERATIONS, RESOURCE_GROUP_OPERATIONS, SUBSCRIPTION_OPERATIONS
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "b24988ac-6180-4385-a5c3-8b4fee0e1d56": "Contributor (as the issue spelled it)",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
}
DATA_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}


@cache
def parsed(name: str) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=INFRA / name))


def text(name: str) -> str:
    return (INFRA / name).read_text()


def resources(name: str, kind: str) -> dict[str, dict[str, Any]]:
    return {key: r["config"] for key, r in parsed(name)["resources"].items() if r["type"] == kind}


def one(name: str, kind: str) -> dict[str, Any]:
    found = resources(name, kind)
    assert len(found) == 1, (kind, list(found))
    return next(iter(found.values()))


def dotted(node: Any) -> str:
    """A pycep expression as Bicep writes it, for property accesses and plain calls:
    `systemTopic.identity.principalId`, `subscription().id`."""
    if isinstance(node, str):
        return node
    if "operator" in node and node["operator"]["type"] == "property_accessor":
        operands = node["operator"]["operands"]
        return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"
    if "function" in node and not any(node["function"]["parameters"].values()):
        return f"{node['function']['type']}()"
    raise AssertionError(f"not a plain expression: {node}")


def app_settings() -> dict[str, str]:
    """Every app setting of the site, name -> the Bicep expression of its value as written (pycep
    turns a variable reference and a string literal into the same string, so values come from the
    source text)."""
    pairs = re.findall(r"name: '([A-Za-z0-9_]+)'\s*\n\s*value: ([^\n]+)", text("modules/app.bicep"))
    return dict(pairs)


@pytest.mark.parametrize("path", BICEP_FILES, ids=[str(p.relative_to(INFRA)) for p in BICEP_FILES])
def test_every_bicep_file_parses(path: Path) -> None:
    template = BicepParser().parse(file_path=path)
    assert template["resources"] or template["modules"]


def test_the_app_runs_on_flex_consumption_with_python_3_11() -> None:
    plan = one("modules/app.bicep", "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True
    site = one("modules/app.bicep", "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["scaleAndConcurrency"] == {
        "instanceMemoryMB": "instanceMemoryMB",
        "maximumInstanceCount": "maximumInstanceCount",
    }
    main = parsed("main.bicep")["parameters"]
    assert main["instanceMemoryMB"]["type"] == main["maximumInstanceCount"]["type"] == "int"
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"


def test_the_site_is_https_only_tls_1_2_without_ftp_or_basic_publishing() -> None:
    site = one("modules/app.bicep", "Microsoft.Web/sites")
    assert site["properties"]["httpsOnly"] is True
    config = site["properties"]["siteConfig"]
    assert config["minTlsVersion"] == "1.2"
    # Flex Consumption does not support siteConfig.ftpsState (flex-consumption-plan.md): FTP is off
    # through the publishing-credentials policies below instead.
    assert "ftpsState" not in config
    policies = resources("modules/app.bicep", "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert sorted(p["name"] for p in policies.values()) == ["ftp", "scm"]
    assert all(p["properties"]["allow"] is False for p in policies.values())
    assert site["identity"]["type"] == "UserAssigned"


def test_the_app_storage_is_reached_through_identity_only() -> None:
    account = one("modules/app.bicep", "Microsoft.Storage/storageAccounts")["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["supportsHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    settings = app_settings()
    assert "AzureWebJobsStorage" not in settings
    assert settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert settings["AzureWebJobsStorage__clientId"] == "identity.properties.clientId"
    assert settings["AZURE_CLIENT_ID"] == "identity.properties.clientId"
    for path in BICEP_FILES:
        source = path.read_text()
        for forbidden in ("listKeys(", "AccountKey=", "SharedAccessSignature", "DefaultEndpointsProtocol"):
            assert forbidden.lower() not in source.lower(), (path.name, forbidden)


def test_the_settings_are_ones_the_service_reads() -> None:
    settings = app_settings()
    platform = {"AzureWebJobsStorage__credential", "AZURE_CLIENT_ID",
                "APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                "OTEL_LOGS_EXPORTER", "OTEL_METRICS_EXPORTER"}  # read by the Azure Monitor distro
    # Traces only: the Functions host sends the logs and metrics already.
    assert (settings["OTEL_LOGS_EXPORTER"], settings["OTEL_METRICS_EXPORTER"]) == ("'none'", "'none'")
    code = (ROOT / "shared" / "settings.py").read_text()
    for name in set(settings) - platform:
        key = name.removeprefix("AzureWebJobsStorage__")
        assert f'"{name}"' in code or f'"{key}"' in code, f"{name} is not read by shared/settings.py"
    # The values the deployment gives, as the app would see them, are accepted.
    sample = {
        "AzureWebJobsStorage__accountName": "stazlinabc",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": "11111111-2222-3333-4444-555555555555",
        "AZURE_SUBSCRIPTION_ID": "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11",
        "DEFAULT_RESOURCE_GROUP": "rg-homes",
        "DEFAULT_REGION": "westeurope",
        "DEFAULT_VNET": "vnet-homes",
        "DEFAULT_SUBNET": "default",
        "PRIVATE_DNS_ZONE_ID": "/subscriptions/0b6f1e2d-3c4a-4d5e-8f70-91a2b3c4d5e6/resourceGroups/rg-hub-dns"
                               "/providers/Microsoft.Network/privateDnsZones/privatelink.file.core.windows.net",
        "AUTO_ATTACH_TAG": "azlin-storage",
        "COST_DIGEST_WEBHOOK_URL": "https://hooks.example.com/digest",
        "AUTH_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "AUTH_AUDIENCE": "8a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
    }
    assert set(settings) - platform <= set(sample)
    read = Settings.from_environ({k: v for k, v in sample.items() if k in settings})
    assert read.identity.configured and not read.identity.emulated  # callers' tokens, from Entra ID
    assert read.identity.app_client_id == sample["AZURE_CLIENT_ID"]
    assert read.storage.connection_string is None
    assert read.storage.table_endpoint == "https://stazlinabc.table.core.windows.net"
    assert read.storage.client_id == sample["AzureWebJobsStorage__clientId"]


def test_cors_origins_reach_the_platforms_cors_setting() -> None:
    """CORS is the Function App's platform setting on Azure (the local host reads
    CORS_ALLOWED_ORIGINS instead): comma-separated origins, split into siteConfig.cors."""
    cors = one("modules/app.bicep", "Microsoft.Web/sites")["properties"]["siteConfig"]["cors"]["allowedOrigins"]
    choice = cors["operator"]["operands"]
    assert choice["condition"]["function"] == {"type": "empty", "parameters": {"item_to_test": "corsAllowedOrigins"}}
    assert choice["true_value"] == []
    split = choice["false_value"]["function"]
    assert split["type"] == "split" and split["parameters"]["delimiter"] == ","
    assert split["parameters"]["input_string"]["function"]["parameters"]["original_string"] == "corsAllowedOrigins"
    main = parsed("main.bicep")
    assert main["parameters"]["corsAllowedOrigins"] == {**main["parameters"]["corsAllowedOrigins"], "default": ""}
    assert main["modules"]["app"]["config"]["params"]["corsAllowedOrigins"] == "corsAllowedOrigins"
    parameters = json.loads(text("main.parameters.json"))["parameters"]
    assert parameters["corsAllowedOrigins"]["value"] == "${AZLIN_CORS_ALLOWED_ORIGINS=}"
    assert "CORS_ALLOWED_ORIGINS" not in app_settings()  # the app itself never reads it


def test_no_setting_holds_a_secret() -> None:
    secret_name = re.compile(r"(KEY|SECRET|PASSWORD|CONNECTION_STRING|TOKEN)$", re.IGNORECASE)
    for name, value in app_settings().items():
        if secret_name.search(name):
            assert not value.startswith("'"), f"{name} has a literal value"
    # The webhook URL carries a token: it is only ever a Key Vault reference.
    digest = app_settings()["COST_DIGEST_WEBHOOK_URL"]
    assert digest.startswith("'@Microsoft.KeyVault(SecretUri=")
    insights = one("modules/app.bicep", "Microsoft.Insights/components")["properties"]
    assert insights["DisableLocalAuth"] is True
    assert "Authorization=AAD" in app_settings()["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]


def test_the_event_subscription_delivers_only_vm_writes_to_the_auto_attach_function(functions: FunctionIndex) -> None:
    topic = one("modules/app.bicep", "Microsoft.EventGrid/systemTopics")
    assert topic["location"] == "global"
    assert topic["properties"]["topicType"] == "Microsoft.Resources.Subscriptions"
    assert dotted(topic["properties"]["source"]) == "subscription().id"
    subscription = one("events.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions")["properties"]
    destination = subscription["destination"]
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["resourceId"] == "${site.id}/functions/on_resource_event"
    assert "on_resource_event" in functions.event_grid  # the app's Event Grid trigger, as indexed
    event_filter = subscription["filter"]
    assert event_filter["includedEventTypes"] == ["Microsoft.Resources.ResourceWriteSuccess"]
    string_in = [f for f in event_filter["advancedFilters"] if f["operatorType"] == "StringIn"]
    assert string_in == [{"operatorType": "StringIn", "key": "data.operationName",
                          "values": ["Microsoft.Compute/virtualMachines/write"]}]
    assert not [f for f in event_filter["advancedFilters"] if "Contains" in f["operatorType"]]
    assert subscription["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    dead = subscription["deadLetterWithResourceIdentity"]
    assert dead["identity"]["type"] == "SystemAssigned"
    assert dead["deadLetterDestination"]["endpointType"] == "StorageBlob"
    # The topic's identity may write the dead-letter container, and nothing else.
    writer = resources("modules/app.bicep", "Microsoft.Authorization/roleAssignments")["deadLetterWriter"]
    assert writer["scope"] == "deadLetters"
    assert dotted(writer["properties"]["principalId"]) == "systemTopic.identity.principalId"


def role_actions(role: str) -> list[str]:
    definition = resources("main.bicep", "Microsoft.Authorization/roleDefinitions")[role]["properties"]
    assert definition["type"] == "CustomRole"
    [permissions] = definition["permissions"]
    assert permissions["notActions"] == permissions["dataActions"] == permissions["notDataActions"] == []
    return list(permissions["actions"])


def test_the_custom_roles_hold_exactly_the_operations_the_adapters_call() -> None:
    groups, subscription = role_actions("groupRole"), role_actions("subscriptionRole")
    assert sorted(groups) == sorted(RESOURCE_GROUP_OPERATIONS)
    assert sorted(subscription) == sorted(SUBSCRIPTION_OPERATIONS)
    assert set(groups) | set(subscription) == ARM_OPERATIONS
    assert not [a for a in groups + subscription if "*" in a]


def test_the_roles_are_assigned_where_the_service_works() -> None:
    main = parsed("main.bicep")
    grants = main["modules"]["grants"]
    assert grants["detail"]["path"] == "modules/managed-group.bicep"
    assert grants["config"]["loop_type"]["detail"]["array_name"] == "managedResourceGroups"
    params = grants["config"]["config"]["params"]
    assert dotted(params["roleDefinitionId"]) == "groupRole.id"
    assert dotted(params["principalId"]) == "app.outputs.identityPrincipalId"
    assigned = parsed("modules/managed-group.bicep")["resources"]["grant"]["config"]["properties"]
    assert assigned["roleDefinitionId"] == "roleDefinitionId"  # the parameter: nothing else is granted
    assert main["parameters"]["managedResourceGroups"]["type"] == "array"
    subscription_grant = main["resources"]["subscriptionGrant"]["config"]["properties"]
    assert dotted(subscription_grant["roleDefinitionId"]) == "subscriptionRole.id"
    scopes = resources("main.bicep", "Microsoft.Authorization/roleDefinitions")["groupRole"]["properties"]
    assert scopes["assignableScopes"]["loop_type"]["detail"]["array_name"] == "managedResourceGroups"


def test_no_broad_built_in_role_is_granted() -> None:
    for path in BICEP_FILES:
        source = path.read_text().lower()
        for guid, role in BROAD_ROLES.items():
            assert guid not in source, f"{path.name} grants {role}"
    # Every built-in role the templates name is a data role on the app's own resources.
    named = set(re.findall(r"'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'",
                           text("modules/app.bicep")))
    assert named == set(DATA_ROLES)
    for name, assignment in resources("modules/app.bicep", "Microsoft.Authorization/roleAssignments").items():
        assert assignment["scope"] in ("storage", "insights", "deadLetters"), name


def test_the_parameters_file_and_azure_yaml_fit_the_template() -> None:
    parameters = json.loads(text("main.parameters.json"))["parameters"]
    declared = parsed("main.bicep")["parameters"]
    assert set(parameters) <= set(declared)
    required = {name for name, p in declared.items() if p["default"] is None}
    assert required <= set(parameters)
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"
    azure = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert azure["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert azure["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    hook = azure["hooks"]["postdeploy"]["posix"]["run"]
    assert (ROOT / hook).is_file()
    # The hook reads the outputs azd exports from main.bicep.
    outputs = set(parsed("main.bicep")["outputs"])
    used = set(re.findall(r"\$\{?([A-Z][A-Z_]+)", (ROOT / hook).read_text())) - {"AZURE_RESOURCE_GROUP"}
    assert used <= outputs | {"AZURE_RESOURCE_GROUP"}, used - outputs
    assert "AZURE_RESOURCE_GROUP" in outputs


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (.ci/run installs it)")
def test_the_infra_scripts_are_shellcheck_clean() -> None:
    scripts = [str(p) for p in sorted(INFRA.rglob("*.sh"))]
    result = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
