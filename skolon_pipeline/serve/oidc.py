"""Optional login through the installation's identity provider (OpenID Connect, with authlib).

Off unless admins.yaml has an `oidc` block; local accounts keep working beside it:

```yaml
oidc:
  metadata_url: https://idp.lindby.se/.well-known/openid-configuration
  client_id: skolon-admin
  client_secret_env: SKOLON_OIDC_CLIENT_SECRET   # the secret is only ever read from this variable
  username_claim: email                          # default: email
  scope_claim: groups                            # the claim (a string or a list) whose values grant access
  scopes:                                        # claim value → scope; the first value listed here that the
    lindby-it: {authority: 1647c2af-9a49-5791-b3d8-c2b85229318b}   # user has wins
    rektor-lindbyskolan: {schools: ["25083676"]}
```

The provider redirects back to `/login/oidc/callback` (register that URL). A user with no mapped claim value is
refused. The session keeps the claim values and is mapped again on every request, so taking a value out of
`scopes` ends that access at once.
"""

from __future__ import annotations

import logging
import os

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from skolon_pipeline.serve import accounts
from skolon_pipeline.serve.scope import Scope

log = logging.getLogger("skolon_pipeline.serve")
PREFIX = "oidc:"


def scope_for(values: list[str], config: dict) -> Scope | None:
    """The scope of the first entry of `config['scopes']` whose claim value the user has."""
    for value, entry in (config.get("scopes") or {}).items():
        if value in values and isinstance(entry, dict):
            schools = entry.get("schools") or []
            try:
                return Scope(authority=entry.get("authority") or None, schools=tuple(str(s) for s in schools))
            except ValueError:
                log.error("oidc: the scope for claim value %r is neither an authority nor schools", value)
                return None
    return None


def claim_values(claims: dict, claim: str) -> list[str]:
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def account_of(session: dict, config: dict | None) -> accounts.Account | None:
    """The account of a session that logged in through the identity provider (None when its access is gone)."""
    if not config or not str(session.get("user", "")).startswith(PREFIX):
        return None
    scope = scope_for(session.get("claims") or [], config)
    return accounts.Account(session["user"], scope) if scope else None


def _client(config: dict):
    from authlib.integrations.starlette_client import OAuth

    oauth = OAuth()
    secret_env = config.get("client_secret_env")
    oauth.register(
        "idp",
        client_id=config["client_id"],
        client_secret=os.environ.get(secret_env, "") if secret_env else None,
        server_metadata_url=config.get("metadata_url"),
        authorize_url=config.get("authorize_url"),
        access_token_url=config.get("token_url"),
        jwks_uri=config.get("jwks_uri"),
        client_kwargs={"scope": config.get("scopes_requested", "openid profile email")},
    )
    return oauth.create_client("idp")


def routes(store) -> list[Route]:
    clients: dict[int, object] = {}

    def client():
        config = store.get().oidc
        if not config:
            return None, None
        key = id(config)
        if key not in clients:
            clients.clear()
            clients[key] = _client(config)
        return clients[key], config

    async def start(request: Request) -> Response:
        c, _ = client()
        if c is None:
            return RedirectResponse("/login", status_code=303)
        return await c.authorize_redirect(request, str(request.url_for("oidc_callback")))

    async def callback(request: Request) -> Response:
        c, config = client()
        if c is None:
            return RedirectResponse("/login", status_code=303)
        try:
            token = await c.authorize_access_token(request)
        except Exception as exc:  # authlib raises its own OAuthError family; the message names no secret
            log.warning("oidc login failed: %s", type(exc).__name__)
            return RedirectResponse("/login", status_code=303)
        claims = dict(token.get("userinfo") or {})
        values = claim_values(claims, config.get("scope_claim", "groups"))
        username = str(claims.get(config.get("username_claim", "email")) or claims.get("sub") or "")
        scope = scope_for(values, config)
        if not username or scope is None:
            log.info("oidc login refused: no mapped claim value")
            return RedirectResponse("/login", status_code=303)
        account = accounts.Account(PREFIX + username[:120], scope)
        accounts.start_session(request.session, account)
        request.session["claims"] = [v for v in values if v in (config.get("scopes") or {})]
        return RedirectResponse("/", status_code=303)

    return [Route("/login/oidc", start), Route("/login/oidc/callback", callback, name="oidc_callback")]
