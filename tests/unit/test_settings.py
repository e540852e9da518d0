from __future__ import annotations

import pytest

from shared.domain.errors import ConfigurationError
from shared.settings import Settings

SUB = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"
BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AZURE_SUBSCRIPTION_ID": SUB}


def test_minimal_settings_take_the_design_defaults() -> None:
    s = Settings.from_environ(BASE)
    assert s.storage.connection_string == "UseDevelopmentStorage=true"
    assert s.subscription_id == SUB
    assert s.arm_endpoint == "https://management.azure.com" and s.arm_credential == "default"
    assert s.auto_attach_tag == "azlin-storage"
    assert s.retail_prices_endpoint == "https://prices.azure.com/api/retail/prices"
    assert s.defaults.resource_group is None and s.cost_digest_webhook_url is None


def test_identity_based_storage_as_deployed() -> None:
    s = Settings.from_environ({"AZURE_SUBSCRIPTION_ID": SUB, "AzureWebJobsStorage__accountName": "appstore",
                               "AzureWebJobsStorage__clientId": "cid"})
    assert s.storage.connection_string is None
    assert s.storage.table_endpoint == "https://appstore.table.core.windows.net"
    assert s.storage.queue_endpoint == "https://appstore.queue.core.windows.net"
    assert s.storage.client_id == "cid"


def test_defaults_are_validated_and_normalised() -> None:
    s = Settings.from_environ(BASE | {"DEFAULT_RESOURCE_GROUP": "rg1", "DEFAULT_REGION": "West Europe"})
    assert (s.defaults.resource_group, s.defaults.region) == ("rg1", "westeurope")


def test_the_storage_network_defaults_are_network_names() -> None:
    s = Settings.from_environ(BASE | {"DEFAULT_VNET": "corp-vnet", "DEFAULT_SUBNET": "storage_1"})
    assert (s.defaults.vnet, s.defaults.subnet) == ("corp-vnet", "storage_1")
    with pytest.raises(ConfigurationError) as err:
        Settings.from_environ(BASE | {"DEFAULT_VNET": "-bad", "DEFAULT_SUBNET": "a b"})
    assert [c.split(":")[0] for c in err.value.causes] == ["DEFAULT_VNET", "DEFAULT_SUBNET"]


TENANT, API, APP = ("72f988bf-86f1-41af-91ab-2d7cd011db47", "11111111-2222-4333-8444-555555555555",
                     "66666666-7777-4888-9999-aaaaaaaaaaaa")
EMULATED = {"ARM_ENDPOINT": "https://127.0.0.1:8443/", "ARM_CREDENTIAL": "emulator", "AUTH_TENANT_ID": TENANT,
            "AUTH_AUDIENCE": API, "AUTH_AUTHORITY": "https://127.0.0.1:8443", "AZURE_CLIENT_ID": APP,
            "EMULATOR_IDENTITY_SECRET": "local-only"}


def test_the_emulator_credential_only_for_a_loopback_endpoint_and_authority() -> None:
    local = Settings.from_environ(BASE | EMULATED)
    assert local.arm_credential == "emulator" and local.arm_endpoint == "https://127.0.0.1:8443"
    assert local.identity.emulated and local.identity.emulator_secret == "local-only"
    with pytest.raises(ConfigurationError, match="incomplete or invalid") as err:
        Settings.from_environ(BASE | {"ARM_CREDENTIAL": "emulator"})
    assert "loopback" in err.value.causes[0] and "EMULATOR_IDENTITY_SECRET" in err.value.causes[1]
    with pytest.raises(ConfigurationError) as err:  # a secret for Entra ID itself is never taken
        Settings.from_environ(BASE | {"AUTH_TENANT_ID": TENANT, "EMULATOR_IDENTITY_SECRET": "x"})
    assert list(err.value.causes) == ["EMULATOR_IDENTITY_SECRET is accepted only when AUTH_AUTHORITY is a "
                                "loopback address (the local emulator)"]


def test_the_api_trusts_one_tenant_and_one_audience() -> None:
    s = Settings.from_environ(BASE | {"AUTH_TENANT_ID": TENANT.upper(), "AUTH_AUDIENCE": f"api://{API}"})
    assert (s.identity.tenant_id, s.identity.audience, s.identity.configured) == (TENANT, API, True)
    assert s.identity.authority == "https://login.microsoftonline.com" and s.identity.scope == "user_impersonation"
    assert not Settings.from_environ(BASE).identity.configured  # the API then answers 503, never serves
    with pytest.raises(ConfigurationError) as err:
        Settings.from_environ(BASE | {"AUTH_TENANT_ID": "contoso", "AUTH_AUDIENCE": "my-api",
                                      "AUTH_AUTHORITY": "http://login.example", "AUTH_SCOPE": "a b"})
    assert [c.split(" ")[0] for c in err.value.causes] == [
        "AUTH_AUTHORITY", "AUTH_TENANT_ID", "AUTH_AUDIENCE", "AUTH_SCOPE"]


def test_every_problem_is_named_at_once_without_echoing_secrets() -> None:
    env = {"DEFAULT_RESOURCE_GROUP": "bad/rg", "ARM_CREDENTIAL": "magic", "STATE_TABLE_PREFIX": "1x",
           "LOCK_LEASE_SECONDS": "5", "COST_DIGEST_WEBHOOK_URL": "http://hooks.example.com/secret-token",
           "RETAIL_PRICES_ENDPOINT": "ftp://x"}
    with pytest.raises(ConfigurationError) as err:
        Settings.from_environ(env)
    text = "\n".join(err.value.causes)
    for name in ("AzureWebJobsStorage", "AZURE_SUBSCRIPTION_ID", "DEFAULT_RESOURCE_GROUP", "ARM_CREDENTIAL",
                 "STATE_TABLE_PREFIX", "LOCK_LEASE_SECONDS", "COST_DIGEST_WEBHOOK_URL",
                 "RETAIL_PRICES_ENDPOINT"):
        assert name in text
    assert "secret-token" not in text


def test_secrets_stay_out_of_repr() -> None:
    s = Settings.from_environ(BASE | {"AzureWebJobsStorage": "AccountKey=SECRET",
                                      "COST_DIGEST_WEBHOOK_URL": "https://hooks.example.com/SECRET2"})
    assert "SECRET" not in repr(s)


def test_timer_schedules_come_from_app_settings_with_defaults(caplog: pytest.LogCaptureFixture) -> None:
    from shared.schedules import timer_schedule

    assert timer_schedule({}, "RECONCILE_SCHEDULE") == "0 */15 * * * *"
    assert timer_schedule({"RECONCILE_SCHEDULE": " 0  */5 * * * * "}, "RECONCILE_SCHEDULE") == "0 */5 * * * *"
    assert timer_schedule({"COST_DIGEST_SCHEDULE": "0 30 6 * * 1-5"}, "COST_DIGEST_SCHEDULE") == "0 30 6 * * 1-5"
    for bad in ("*/5 * * * *", "0 0 7 * * * *", "0 0 7 * * $(reboot)", "0 */0 * * * *",
                "99 99 99 99 99 99", "a b c d e f", "0 0 0 31 2 *"):
        assert timer_schedule({"COST_DIGEST_SCHEDULE": bad}, "COST_DIGEST_SCHEDULE") == "0 0 7 * * *", bad
    assert "COST_DIGEST_SCHEDULE" in caplog.text and "is not an NCRONTAB schedule" in caplog.text


def test_agent_wait_and_auto_heal_settings() -> None:
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true",
           "AZURE_SUBSCRIPTION_ID": "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"}
    settings = Settings.from_environ(env)
    assert (settings.vm_agent_wait_minutes, settings.auto_heal) == (20, True)
    settings = Settings.from_environ({**env, "VM_AGENT_WAIT_MINUTES": "45", "AUTO_HEAL": "false"})
    assert (settings.vm_agent_wait_minutes, settings.auto_heal) == (45, False)
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_environ({**env, "VM_AGENT_WAIT_MINUTES": "0", "AUTO_HEAL": "maybe"})
    assert len(caught.value.causes) == 2
