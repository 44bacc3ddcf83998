"""The SS12000 v2.1 API client: OAuth2 client credentials, `pageToken` paging, retries with a time budget.

* Authentication is authlib's httpx integration (`OAuth2Client`, grant `client_credentials`,
  `client_secret_post` or `client_secret_basic`): it renews the token before it expires; a 401 from a data
  endpoint renews it once more (a token revoked early), and a second 401 with a fresh token fails the pull.
* TLS verification is always on (an `ssl` context from the system's or the configured CA bundle, plus the client
  certificate for mutual TLS); there is no switch to turn it off.
* Paging follows the spec: the first request carries the filters and `limit`; later requests carry the
  `pageToken` the server sent (with `limit`, which the spec allows, and no other filter) until it is null.
  Every page is parsed and must be a page object (`{"data": [...], "pageToken": ...}`).
* Retries (tenacity): timeouts, connection errors, 429, 5xx and pages that are not JSON are retried with
  exponential backoff and jitter, honouring `Retry-After`; every retry counts against the pull's deadline
  (`timeout_minutes`). Any other 4xx fails at once, naming the status and the endpoint (never the token).

The client never logs or raises anything holding the secret or the token: errors name the endpoint's path.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import ssl
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import tenacity

# authlib's httpx integration runs on httpx2 when it is installed and on httpx otherwise (with a deprecation
# warning); the exceptions caught here must come from the module its client is built on.
try:
    import httpx2 as httpx
except ImportError:
    import httpx
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # The fallback's deprecation notice would be printed on every run; the dependency pins keep it working.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.httpx_client import OAuth2Client

from skolon_pipeline.config import ApiConfig
from skolon_pipeline.pull.policy import ENTITY_TYPES, PullError, PullPolicy

# The 2.1 spec spells the activities key of /deletedEntities `activitites`; registries send either.
DELETED_KEYS: dict[str, tuple[str, ...]] = {e: (e,) for e in ENTITY_TYPES} | {
    "activities": ("activities", "activitites")
}


_TLS_UNVERIFIED = (
    "the server's TLS certificate could not be verified (CERTIFICATE_VERIFY_FAILED); if the registry "
    "uses its own CA, set ca_bundle to it"
)


class _Transient(Exception):
    """A failure worth another attempt; `retry_after` is the server's Retry-After in seconds, if it sent one."""

    def __init__(self, problem: str, retry_after: float | None = None):
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after


class _WaitRetryAfter(tenacity.wait.wait_base):
    """The server's Retry-After when it sent one, else the fallback (exponential backoff with jitter)."""

    def __init__(self, fallback: tenacity.wait.wait_base):
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        return self.fallback(retry_state)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _ssl_context(source_id: str, api: ApiConfig) -> ssl.SSLContext:
    """Verification always on: the system's CAs, or the configured bundle; the client certificate for mTLS."""
    try:
        context = ssl.create_default_context(cafile=api.ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise PullError(source_id, f"ca_bundle {api.ca_bundle}: cannot be loaded ({exc.__class__.__name__})") from None
    if api.client_cert:
        try:
            context.load_cert_chain(api.client_cert, api.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise PullError(
                source_id, f"client_cert/client_key {api.client_cert}: cannot be loaded ({exc.__class__.__name__})"
            ) from None
    return context


@dataclass
class Page:
    number: int  # 1, 2, ... in the order the server sent them
    body: bytes  # as the API sent it
    document: dict[str, Any]  # parsed


class Ss12000Client:
    """One pull's connection to a registry: token, paging, retries. Use as a context manager."""

    def __init__(
        self,
        source_id: str,
        api: ApiConfig,
        secret: str,
        deadline: float,
        policy: PullPolicy = PullPolicy(),
        log: Callable[[str], None] | None = None,
    ):
        self.source_id = source_id
        self.api = api
        self.policy = policy
        self.deadline = deadline  # time.monotonic() by which the pull must be done
        self.retries = 0
        self.requests = 0
        self.tokens = 0
        self._log = log or (lambda _message: None)
        self._secret = secret
        self._fresh_token = False
        self._http = OAuth2Client(
            client_id=api.client_id,
            client_secret=secret,
            token_endpoint_auth_method=api.auth_method,
            scope=api.scope,
            token_endpoint=api.token_url,
            grant_type="client_credentials",
            leeway=policy.token_leeway,
            verify=_ssl_context(source_id, api),
            timeout=httpx.Timeout(policy.request_timeout),
            headers={"Accept": "application/json", "User-Agent": "skolon-pipeline"},
            follow_redirects=False,
        )

    def __enter__(self) -> Ss12000Client:
        return self

    def __exit__(self, *exc) -> None:
        self._http.close()

    # ── errors ─────────────────────────────────────────────────────────────────────────────────────────────
    def _fail(self, problem: str) -> PullError:
        # Belt and braces: whatever a server or library put into a message, the secret never leaves.
        return PullError(self.source_id, problem.replace(self._secret, "***") if self._secret else problem)

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _timeout(self) -> httpx.Timeout:
        left = self._remaining()
        if left <= 0:
            raise self._fail(f"took longer than timeout_minutes ({self.api.timeout_minutes:g})")
        return httpx.Timeout(min(self.policy.request_timeout, left))

    # ── retries ────────────────────────────────────────────────────────────────────────────────────────────
    def _count_retry(self, what: str, retry_state: tenacity.RetryCallState) -> None:
        self.retries += 1
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.upcoming_sleep
        self._log(f"source {self.source_id!r}: {what}: {exc}; retry {retry_state.attempt_number} in {wait:.2f} s")

    def _with_retries(self, what: str, attempt: Callable[[], Any]) -> Any:
        p = self.policy
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Transient),
            wait=_WaitRetryAfter(
                tenacity.wait_exponential_jitter(multiplier=p.initial_wait, max=p.max_wait, jitter=p.jitter)
            ),
            stop=tenacity.stop_after_attempt(p.max_attempts) | tenacity.stop_before_delay(max(0.0, self._remaining())),
            before_sleep=lambda state: self._count_retry(what, state),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            if self._remaining() <= 0 or attempts < p.max_attempts:
                raise self._fail(
                    f"{what}: {exc.problem}; gave up after {attempts} attempt(s) within "
                    f"timeout_minutes ({self.api.timeout_minutes:g})"
                ) from None
            raise self._fail(f"{what}: {exc.problem}; gave up after {attempts} attempts") from None

    # ── token ──────────────────────────────────────────────────────────────────────────────────────────────
    def fetch_token(self) -> None:
        """A new access token from the token endpoint (retried like any request)."""
        what = f"token endpoint {self.api.token_url}"

        def attempt():
            self.requests += 1
            try:
                self._http.fetch_token(timeout=self._timeout())
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status == 429 or status >= 500:
                    raise _Transient(
                        f"answered {status} {exc.response.reason_phrase}",
                        retry_after_seconds(exc.response.headers.get("Retry-After")),
                    ) from None
                raise self._fail(f"{what} answered {status} {exc.response.reason_phrase}") from None
            except httpx.TransportError as exc:
                if _unverified(exc):
                    raise self._fail(f"{what}: {_TLS_UNVERIFIED}") from None
                raise _Transient(_transport_problem(exc)) from None
            except OAuthError as exc:
                raise self._fail(f"{what} refused the client credentials ({exc.error})") from None
            except ValueError as exc:  # not a JSON object
                raise self._fail(f"{what}: {exc}") from None

        self._with_retries(what, attempt)
        self.tokens += 1
        self._fresh_token = True

    # ── pages ──────────────────────────────────────────────────────────────────────────────────────────────
    def _get(self, path: str, params: list[tuple[str, str]], label: str) -> Page:
        url = f"{self.api.url}/{path}"

        def attempt() -> tuple[bytes, dict]:
            self.requests += 1
            try:
                response = self._http.get(url, params=params, timeout=self._timeout())
            except httpx.TransportError as exc:
                if _unverified(exc):
                    raise self._fail(f"GET /{path}: {_TLS_UNVERIFIED}") from None
                raise _Transient(_transport_problem(exc)) from None
            except httpx.HTTPStatusError as exc:  # the token endpoint, renewing an expired token
                status = exc.response.status_code
                if status == 429 or status >= 500:
                    raise _Transient(
                        f"token endpoint answered {status}",
                        retry_after_seconds(exc.response.headers.get("Retry-After")),
                    ) from None
                raise self._fail(f"token endpoint {self.api.token_url} answered {status}") from None
            except OAuthError as exc:
                raise self._fail(
                    f"token endpoint {self.api.token_url} refused the client credentials ({exc.error})"
                ) from None
            status = response.status_code
            if status == 401:
                if self._fresh_token:
                    raise self._fail(
                        f"GET /{path} answered 401 Unauthorized with a newly issued token "
                        "(does the client have access to this endpoint?)"
                    )
                self._log(f"source {self.source_id!r}: GET /{path} answered 401; renewing the token")
                self.fetch_token()
                raise _Transient("answered 401 Unauthorized (token renewed)", retry_after=0)
            if status == 429 or status >= 500:
                raise _Transient(
                    f"answered {status} {response.reason_phrase}",
                    retry_after_seconds(response.headers.get("Retry-After")),
                )
            if status != 200:
                raise self._fail(f"GET /{path} ({label}) answered {status} {response.reason_phrase}")
            body = response.content
            try:
                document = json.loads(body)
            except ValueError:
                raise _Transient("is not valid JSON") from None
            if not isinstance(document, dict) or "data" not in document:
                raise self._fail(
                    f'GET /{path} ({label}) is not an SS12000 page object ({{"data": ..., "pageToken": ...}})'
                )
            self._fresh_token = False
            return body, document

        body, document = self._with_retries(f"GET /{path} ({label})", attempt)
        return Page(0, body, document)

    def pages(self, path: str, filters: list[tuple[str, str]] = (), data_type: type = list) -> Iterator[Page]:
        """Every page of an endpoint, in order: filters on the first request, then the pageToken alone (with
        `limit`). Stops when the server sends a null pageToken; a repeated token or too many pages fail."""
        limit = ("limit", str(self.api.page_size))
        params = [*filters, limit]
        seen: set[str] = set()
        number = 0
        while True:
            number += 1
            if number > self.policy.max_pages:
                raise self._fail(f"GET /{path}: more than {self.policy.max_pages} pages; stopped")
            label = f"page {number}"
            page = self._get(path, params, label)
            page.number = number
            if not isinstance(page.document["data"], data_type):
                raise self._fail(
                    f"GET /{path} ({label}): 'data' is not a JSON {'array' if data_type is list else 'object'}"
                )
            yield page
            token = page.document.get("pageToken")
            if token is None or token == "":
                return
            if not isinstance(token, str):
                raise self._fail(f"GET /{path} ({label}): pageToken is not a string")
            if token in seen:
                raise self._fail(f"GET /{path} ({label}): the server sent a pageToken it had sent before (a loop)")
            seen.add(token)
            params = [("pageToken", token), limit]

    def entity_pages(self, entity: str, modified_after: str | None = None) -> Iterator[Page]:
        filters = [("meta.modified.after", modified_after)] if modified_after else []
        return self.pages(entity, filters)

    def deleted_ids(self, after: str, entities: list[str]) -> tuple[dict[str, set[str]], int]:
        """Ids removed since `after` per entity (lower-cased), and the number of pages read."""
        deleted: dict[str, set[str]] = {e: set() for e in entities}
        filters = [("after", after), *(("entities", ENTITY_TYPES[e]) for e in entities)]
        pages = 0
        for page in self.pages("deletedEntities", filters, data_type=dict):
            pages += 1
            data = page.document["data"]
            for entity in entities:
                for key in DELETED_KEYS[entity]:
                    ids = data.get(key) or []
                    if not isinstance(ids, list):
                        raise self._fail(f"GET /deletedEntities (page {page.number}): {key!r} is not an array")
                    deleted[entity].update(str(i).strip().lower() for i in ids if i is not None)
        return deleted, pages


def _transport_problem(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({exc.__class__.__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was dropped before the answer was complete"
    detail = " ".join(str(exc).split())[:200]
    return f"connection failed ({exc.__class__.__name__}{': ' + detail if detail else ''})"


def _unverified(exc: httpx.TransportError) -> bool:
    """The server's certificate failed verification: no retry will change that."""
    return isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)
