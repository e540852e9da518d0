"""Microsoft Entra ID for the emulator: one tenant with users, groups and service principals, the
tenant's signing key, and the endpoints clients sign in with (OpenID configuration, JWKS, token).

What it follows (MicrosoftDocs/entra-docs, `docs/identity-platform/`):
- access tokens are RS256 JWTs signed by a key listed at the tenant's `jwks_uri`, named by `kid`
  (`access-tokens.md`, `access-token-claims-reference.md`);
- v2.0 tokens (issued for an API whose app registration asks for version 2) carry
  `iss = <authority>/<tenant>/v2.0` and `aud` = the API's client id; v1.0 tokens (Resource Manager's)
  carry `iss = <authority>/<tenant>/` (sts.windows.net in Azure) and `aud` = the resource URI;
- a delegated token carries `scp` (space-separated scopes), an app-only token never does (it may
  carry `roles`); `idtyp` says `user` or `app`; `groups` lists the user's group object ids;
- the on-behalf-of grant (`v2-oauth2-on-behalf-of-flow.md`): grant_type
  `urn:ietf:params:oauth:grant-type:jwt-bearer`, `requested_token_use=on_behalf_of`, `assertion` =
  the user's token for the middle tier, which must be a delegated token whose audience is the
  calling app; an app-only assertion is refused;
- client assertions from a managed identity (`workload-identity-federation-config-app-trust-
  managed-identity.md`): the app registration trusts a federated credential whose issuer is the
  tenant's v2.0 issuer, whose subject is the identity's object id and whose audience is
  `api://AzureADTokenExchange`.

Locally the authority is the emulator's own URL (`https://127.0.0.1:<port>`), standing in for
`https://login.microsoftonline.com` and `https://sts.windows.net`.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.emulator.arm import TENANT_ID

ARM_AUDIENCES = ("https://management.azure.com/", "https://management.core.windows.net/")
ARM_SCOPE = "https://management.azure.com/.default"
TOKEN_EXCHANGE = "api://AzureADTokenExchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The client id Azure CLI signs in with: tokens `python -m local token` prints name it as `azp`.
AZURE_CLI_APP_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
DEFAULT_LIFETIME = 3600  # seconds; Entra's access tokens live 60-90 minutes by default


class TenantError(Exception):
    """A refusal of the token endpoint, in the shape Entra answers (`error`, AADSTS text)."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description

    def body(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description}",
            "error_codes": [self.code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }


class InvalidToken(Exception):
    """A bearer token Resource Manager does not accept: `code` is ARM's error code for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class FederatedCredential:
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (TOKEN_EXCHANGE,)


@dataclass
class Principal:
    """A directory object. Users sign in by name (the CLI stands in for `az login`); service
    principals by client id and secret, or a federated assertion; groups hold members."""

    object_id: str
    kind: str  # "User", "Group" or "ServicePrincipal"
    name: str
    app_id: str | None = None  # service principals: the client id
    secret: str | None = field(default=None, repr=False)
    scope: str | None = None  # an API's delegated scope (e.g. user_impersonation)
    federated: list[FederatedCredential] = field(default_factory=list)
    members: set[str] = field(default_factory=set)  # groups: member object ids

    @property
    def upn(self) -> str:
        return f"{self.name}@azlin.example"


class Tenant:
    """The directory and its token service. Thread-safe: the emulator serves requests in threads."""

    def __init__(self, tenant_id: str = TENANT_ID) -> None:
        self.tenant_id = tenant_id
        self.authority = "https://login.microsoftonline.com"  # set to the emulator's URL when served
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = uuid.uuid4().hex
        self._principals: dict[str, Principal] = {}
        self._lock = threading.RLock()

    # -- directory --------------------------------------------------------------------------------

    def add(
        self,
        kind: str,
        name: str,
        *,
        secret: str | None = None,
        scope: str | None = None,
        app_id: str | None = None,
        object_id: str | None = None,
    ) -> Principal:
        """Add a principal, or return the one of that name and kind (idempotent)."""
        if kind not in ("User", "Group", "ServicePrincipal"):
            raise ValueError(f"kind must be User, Group or ServicePrincipal, not {kind!r}")
        with self._lock:
            existing = self.find(name)
            if existing is not None:
                if existing.kind != kind:
                    raise ValueError(f"{name} is a {existing.kind} already")
                return existing
            principal = Principal(
                object_id or str(uuid.uuid4()),
                kind,
                name,
                app_id=(app_id or str(uuid.uuid4())) if kind == "ServicePrincipal" else None,
                secret=secret,
                scope=scope,
            )
            self._principals[principal.object_id] = principal
            return principal

    def add_member(self, group: str, member: str) -> None:
        with self._lock:
            target, who = self.get(group), self.get(member)
            if target.kind != "Group":
                raise ValueError(f"{group} is not a group")
            target.members.add(who.object_id)

    def trust(self, app: str, identity: str) -> FederatedCredential:
        """Let `app` sign in with assertions issued to the managed identity `identity`."""
        with self._lock:
            client, subject = self.get(app), self.get(identity)
            credential = FederatedCredential(self.issuer(), subject.object_id)
            if credential not in client.federated:
                client.federated.append(credential)
            return credential

    def find(self, name_or_id: str) -> Principal | None:
        """By object id, client id or name (names compared case-insensitively)."""
        with self._lock:
            if name_or_id in self._principals:
                return self._principals[name_or_id]
            wanted = name_or_id.lower()
            return next(
                (
                    p
                    for p in self._principals.values()
                    if p.name.lower() == wanted or (p.app_id or "").lower() == wanted
                ),
                None,
            )

    def get(self, name_or_id: str) -> Principal:
        found = self.find(name_or_id)
        if found is None:
            raise KeyError(f"no principal {name_or_id!r} in the tenant")
        return found

    def groups_of(self, object_id: str) -> list[str]:
        """The groups `object_id` belongs to, directly or through nested groups."""
        with self._lock:
            found: set[str] = set()
            frontier = {object_id}
            while frontier:
                current = frontier.pop()
                for group in self._principals.values():
                    if current in group.members and group.object_id not in found:
                        found.add(group.object_id)
                        frontier.add(group.object_id)
            return sorted(found)

    def principals(self) -> list[Principal]:
        with self._lock:
            return list(self._principals.values())

    # -- kept across restarts (persistence.py) ----------------------------------------------------

    def export(self) -> dict[str, Any]:
        """The directory and the signing key, as JSON values (the key of a local test tenant)."""
        with self._lock:
            key = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()).decode()
            principals = [
                {"object_id": p.object_id, "kind": p.kind, "name": p.name, "app_id": p.app_id,
                 "secret": p.secret, "scope": p.scope, "members": sorted(p.members),
                 "federated": [[f.issuer, f.subject, list(f.audiences)] for f in p.federated]}
                for p in self._principals.values()
            ]
        return {"key": key, "kid": self._kid, "principals": principals}

    def restore(self, saved: dict[str, Any]) -> None:
        key = serialization.load_pem_private_key(saved["key"].encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the saved tenant key is not an RSA key")
        with self._lock:
            self._key, self._kid = key, saved["kid"]
            self._principals = {
                p["object_id"]: Principal(
                    p["object_id"], p["kind"], p["name"], app_id=p["app_id"], secret=p["secret"],
                    scope=p["scope"], members=set(p["members"]),
                    federated=[FederatedCredential(issuer, subject, tuple(audiences))
                               for issuer, subject, audiences in p["federated"]])
                for p in saved["principals"]
            }

    # -- tokens -----------------------------------------------------------------------------------

    def issuer(self, version: str = "2.0") -> str:
        return (
            f"{self.authority}/{self.tenant_id}/v2.0"
            if version == "2.0"
            else (f"{self.authority}/{self.tenant_id}/")
        )

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self._kid,
                    "x5t": self._kid,
                    "n": _b64(numbers.n),
                    "e": _b64(numbers.e),
                    "issuer": self.issuer(),
                }
            ]
        }

    def openid_configuration(self) -> dict[str, Any]:
        base = f"{self.authority}/{self.tenant_id}"
        return {
            "issuer": self.issuer(),
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "NA",
        }

    def token(
        self,
        principal: Principal,
        scope: str,
        *,
        client: Principal | None = None,
        lifetime: int = DEFAULT_LIFETIME,
        overrides: dict[str, Any] | None = None,
    ) -> str:
        """An access token for `principal` and the resource of `scope` (`<resource>/.default`).
        A user's token is delegated (`scp`), issued to `client` (Azure CLI when None); a service
        principal's is app-only. `overrides` (tests): claims changed in a token the tenant signs."""
        resource = scope.removesuffix("/.default").removesuffix("/")
        now = int(time.time())
        claims: dict[str, Any] = {
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            "tid": self.tenant_id,
            "oid": principal.object_id,
            "sub": principal.object_id,
            "uti": uuid.uuid4().hex,
        }
        api = self._api(resource)
        if api is not None:  # an API registered here: a v2.0 token, audience its client id
            claims.update(aud=api.app_id, iss=self.issuer(), ver="2.0")
        elif resource + "/" in ARM_AUDIENCES:
            claims.update(aud=resource + "/", iss=self.issuer("1.0"), ver="1.0")
        elif resource == TOKEN_EXCHANGE:
            claims.update(aud=TOKEN_EXCHANGE, iss=self.issuer(), ver="2.0")
        else:
            raise TenantError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant.",
            )
        if principal.kind == "User":
            issued_to = client.app_id if client is not None else AZURE_CLI_APP_ID
            scp = (api.scope if api is not None else None) or "user_impersonation"
            claims.update(
                idtyp="user",
                scp=scp,
                name=principal.name,
                preferred_username=principal.upn,
                upn=principal.upn,
                groups=self.groups_of(principal.object_id),
            )
            claims["azp" if claims["ver"] == "2.0" else "appid"] = issued_to
        elif principal.kind == "ServicePrincipal":
            claims.update(
                idtyp="app", app_displayname=principal.name, groups=self.groups_of(principal.object_id)
            )
            claims["azp" if claims["ver"] == "2.0" else "appid"] = principal.app_id
        else:
            raise TenantError(
                400, "invalid_request", 90002, f"{principal.name} is a group; groups do not sign in."
            )
        claims.update(overrides or {})
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid, "typ": "JWT"})

    def decode(self, token: str, *, audiences: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The claims of a token this tenant issued, checked for signature and expiry (and for
        audience, when `audiences` is given); raises InvalidToken naming ARM's error code."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("InvalidAuthenticationToken", "The access token is invalid.") from None
        if header.get("kid") != self._kid:
            raise InvalidToken(
                "InvalidAuthenticationToken", "The access token is not signed by a key of this tenant."
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._key.public_key(), algorithms=["RS256"], options={"verify_aud": False}, leeway=0
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            ) from None
        except jwt.PyJWTError:
            raise InvalidToken("InvalidAuthenticationToken", "The access token is invalid.") from None
        if claims.get("tid") != self.tenant_id or claims.get("iss") not in (
            self.issuer(),
            self.issuer("1.0"),
        ):
            raise InvalidToken(
                "InvalidAuthenticationTokenTenant", "The access token is from the wrong issuer."
            )
        if audiences is not None and claims.get("aud") not in audiences:
            raise InvalidToken(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource "
                f"'{claims.get('aud')}'. It should exactly match with one of the allowed "
                f"audiences {', '.join(repr(a) for a in audiences)}.",
            )
        return claims

    # -- the token endpoint -----------------------------------------------------------------------

    def grant(self, form: dict[str, str]) -> dict[str, Any]:
        """POST /{tenant}/oauth2/v2.0/token: client credentials and on-behalf-of."""
        grant_type = form.get("grant_type", "")
        client = self._client(form)
        scope = next((s for s in form.get("scope", "").split() if s.endswith("/.default")), "")
        if not scope:
            raise TenantError(
                400,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid.",
            )
        if grant_type == "client_credentials":
            token = self.token(client, scope)
        elif grant_type == JWT_BEARER and form.get("requested_token_use") == "on_behalf_of":
            token = self.token(self._on_behalf_of(client, form.get("assertion", "")), scope, client=client)
        else:
            raise TenantError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        return {
            "token_type": "Bearer",
            "expires_in": DEFAULT_LIFETIME,
            "ext_expires_in": DEFAULT_LIFETIME,
            "access_token": token,
        }

    def _client(self, form: dict[str, str]) -> Principal:
        client_id = form.get("client_id", "")
        with self._lock:
            client = next((p for p in self._principals.values() if p.app_id == client_id), None)
        if client is None:
            raise TenantError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        if "client_secret" in form:
            if client.secret is None or form["client_secret"] != client.secret:
                raise TenantError(401, "invalid_client", 7000215, "Invalid client secret provided.")
            return client
        if form.get("client_assertion_type") == ASSERTION_TYPE:
            self._check_federated(client, form.get("client_assertion", ""))
            return client
        raise TenantError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )

    def _check_federated(self, client: Principal, assertion: str) -> None:
        try:
            claims = self.decode(assertion)
        except InvalidToken as error:
            raise TenantError(
                401,
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range or invalid: {error.message}",
            ) from None
        trusted = any(
            c.issuer == claims.get("iss")
            and c.subject == claims.get("sub")
            and claims.get("aud") in c.audiences
            for c in client.federated
        )
        if not trusted:
            raise TenantError(
                401,
                "invalid_client",
                70021,
                "No matching federated identity record found for presented assertion. "
                f"Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: "
                f"'{claims.get('sub')}'. Assertion Audience: '{claims.get('aud')}'.",
            )

    def _on_behalf_of(self, client: Principal, assertion: str) -> Principal:
        try:
            claims = self.decode(assertion, audiences=(client.app_id or "", f"api://{client.app_id}"))
        except InvalidToken as error:
            code = 500131 if error.code == "InvalidAuthenticationTokenAudience" else 50013
            raise TenantError(
                400, "invalid_grant", code, f"Assertion is not valid for this client: {error.message}"
            ) from None
        if "scp" not in claims:  # the flow works for user principals only
            raise TenantError(
                400,
                "invalid_grant",
                7000114,
                f"Application '{claims.get('azp') or claims.get('appid')}' isn't allowed to "
                "make application on-behalf-of calls.",
            )
        user = self.find(str(claims.get("oid")))
        if user is None or user.kind != "User":
            raise TenantError(
                400, "invalid_grant", 50034, "The user account does not exist in the directory."
            )
        return user

    def _api(self, resource: str) -> Principal | None:
        """The API whose client id or `api://<client id>` is `resource`."""
        wanted = resource.removeprefix("api://")
        with self._lock:
            return next(
                (
                    p
                    for p in self._principals.values()
                    if p.kind == "ServicePrincipal" and p.scope and p.app_id == wanted
                ),
                None,
            )


def parse_form(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _b64(number: int) -> str:
    data = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
