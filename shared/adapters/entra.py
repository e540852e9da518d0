"""Entra ID access tokens for the API, validated in the app: the signature against the tenant's
signing keys (fetched from its OpenID configuration, cached, fetched again when a token names an
unknown key), the issuer, the audience, the times and the tenant; a user's token must carry the
API's delegated scope.

Which tokens (MicrosoftDocs/entra-docs `docs/identity-platform/access-tokens.md`,
`access-token-claims-reference.md`): RS256 JWTs; a v2.0 token has `iss =
https://login.microsoftonline.com/<tenant>/v2.0` and `aud` = the API's client id; a v1.0 token
`iss = https://sts.windows.net/<tenant>/` and `aud` = the client id or `api://<client id>`. A
delegated (user) token carries `scp`, an app-only (service principal) token never does; `idtyp`,
when present, says which. `groups` lists the user's groups unless there are too many
(`_claim_names` then points elsewhere).

PyJWT (and the cryptography it uses) is imported here only, when the first request arrives.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
import urllib.request
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import jwt

from shared.domain.errors import ConfigurationError, ErrorCode, TransientError, Unauthenticated
from shared.domain.identity import Caller, Principal, PrincipalKind
from shared.settings import IdentitySettings

LEEWAY_SECONDS = 60  # clock skew allowed between Entra ID and this app
KEY_CACHE_SECONDS = 3600
KEY_REFRESH_COOLDOWN = 30  # an unknown kid fetches the keys again at most this often
MAX_TOKEN_CHARS = 16_384
_TRY = (
    "get a new access token for the API (az account get-access-token --scope api://<API client id>/.default)"
)


class EntraTokenValidator:
    def __init__(self, identity: IdentitySettings) -> None:
        self.identity = identity
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None

    def caller(self, token: str) -> Caller:
        identity = self.identity
        if not identity.configured:
            raise ConfigurationError(
                "The API's sign-in is not configured, so no request can be authenticated.",
                causes=["AUTH_TENANT_ID and AUTH_AUDIENCE are required"],
                try_hint="set them to the tenant and the API's app registration (docs/deploy.md)",
            )
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise _refused("the bearer token is empty or too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused("the bearer token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise _refused("the token is not signed with RS256")
        claims = self._verified(token)
        if claims.get("tid") != identity.tenant_id:
            raise _refused("the token was issued by another tenant")
        return _caller(claims, token, identity.scope)

    def _verified(self, token: str) -> dict[str, Any]:
        key = self._signing_key(token)
        audience = str(self.identity.audience)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=[audience, f"api://{audience}"],
                issuer=self._issuers(),
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "oid", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise _refused("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise _refused("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise _refused("the token is not for this API (audience)") from None
        except jwt.InvalidIssuerError:
            raise _refused("the token's issuer is not the tenant's") from None
        except jwt.InvalidSignatureError:
            raise _refused("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as err:
            raise _refused(f"the token has no '{err.claim}' claim") from None
        except jwt.PyJWTError:
            raise _refused("the token is not valid") from None
        return claims

    def _signing_key(self, token: str) -> Any:
        try:
            return self._keys.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as err:
            raise TransientError(
                "The tenant's signing keys could not be read.", causes=[str(err)[:200]], retry_after=5
            ) from None
        except (jwt.PyJWKClientError, jwt.DecodeError):
            raise _refused("the token is signed by a key the tenant does not publish") from None

    @cached_property
    def _keys(self) -> jwt.PyJWKClient:
        return jwt.PyJWKClient(
            str(self._openid()["jwks_uri"]),
            cache_keys=True,
            lifespan=KEY_CACHE_SECONDS,
            ssl_context=self._ssl,
            timeout=10,
            cooldown_duration=KEY_REFRESH_COOLDOWN,
        )

    def _issuers(self) -> list[str]:
        """The tenant's v2.0 issuer (from its OpenID configuration) and its v1.0 one."""
        tenant = self.identity.tenant_id
        host = urlsplit(self.identity.authority).hostname or ""
        v1 = (
            f"https://sts.windows.net/{tenant}/"
            if host == "login.microsoftonline.com"
            else (f"{self.identity.authority}/{tenant}/")
        )
        return [str(self._openid()["issuer"]), v1]

    def _openid(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                base = f"{self.identity.authority}/{self.identity.tenant_id}"
                url = f"{base}/v2.0/.well-known/openid-configuration"
                try:
                    with urllib.request.urlopen(url, context=self._ssl, timeout=10) as answer:  # noqa: S310
                        self._metadata = json.loads(answer.read())
                except (urllib.error.URLError, OSError, ValueError) as err:
                    raise TransientError(
                        "The tenant's OpenID configuration could not be read.",
                        causes=[f"{url}: {err}"[:300]],
                        retry_after=5,
                    ) from None
            return self._metadata

    @cached_property
    def _ssl(self) -> ssl.SSLContext:
        if self.identity.emulated and self.identity.ca_bundle:
            return ssl.create_default_context(cafile=self.identity.ca_bundle)
        return ssl.create_default_context()


def _caller(claims: dict[str, Any], token: str, scope: str) -> Caller:
    delegated = "scp" in claims
    if claims.get("idtyp") in ("app", "user") and (claims["idtyp"] == "user") != delegated:
        raise _refused("the token's type and scopes disagree")
    if delegated and scope not in str(claims["scp"]).split():
        raise _refused(f"the token does not carry the API's scope '{scope}'")
    if delegated:
        kind = PrincipalKind.USER
        name = claims.get("preferred_username") or claims.get("upn") or claims.get("name")
    else:
        kind = PrincipalKind.SERVICE_PRINCIPAL
        name = claims.get("app_displayname") or claims.get("azp") or claims.get("appid")
    listed = claims.get("groups")
    groups: list[Any] = listed if isinstance(listed, list) else []
    # All groups are known only from a `groups` list: none (the registration emits no groups) or
    # an overage pointer means a membership through a group cannot be seen here.
    overage = "groups" in (claims.get("_claim_names") or {}) or not isinstance(listed, list)
    principal = Principal(str(claims["oid"]), str(name or claims["oid"])[:200], kind)
    return Caller(
        principal, str(claims["tid"]), frozenset(str(g) for g in groups), token, groups_complete=not overage
    )


def _refused(reason: str) -> Unauthenticated:
    return Unauthenticated(
        "The request has no valid access token for this API.",
        causes=[reason],
        try_hint=_TRY,
        code=ErrorCode.UNAUTHENTICATED,
    )
