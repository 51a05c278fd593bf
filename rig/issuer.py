"""A tiny Docker token-auth server for tests.

Implements the two token endpoints a registry client may use:

* ``GET /token`` from the Docker token spec (repeated ``scope`` query
  parameters, Basic credentials, ``offline_token=true`` for a refresh token);
* ``POST /token`` from the Docker OAuth2 spec (``grant_type=password`` or
  ``refresh_token``, ``access_type=offline`` for a refresh token).

Tokens are ES256 JWTs that distribution 2.8 accepts: the header carries the
signing certificate in ``x5c`` (verified against the registry's
``rootcertbundle``) and the libtrust ``kid`` of the same key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .stand_in import AnyMethodHandler, StandInServer

TOKEN_TTL_S = 300
# Every action a repository scope may ask for; "*" is what distribution uses for "all".
REPOSITORY_ACTIONS = frozenset({"pull", "push", "delete", "*"})
PUBLIC_ACTIONS = frozenset({"pull"})
REDACTED = "***"


def default_is_private(repository: str) -> bool:
    """Private namespace rule: ``private/...`` or any ``.../private/...`` path segment."""
    return repository.startswith("private/") or "/private/" in repository


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class SigningKey:
    """The issuer's key pair, its self-signed certificate and libtrust key id."""

    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def x5c(self) -> list[str]:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return [base64.b64encode(der).decode("ascii")]

    @property
    def key_id(self) -> str:
        return libtrust_key_id(self.private_key.public_key())


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """libtrust's key id: base32 of the first 240 bits of sha256(SPKI DER), in groups of 4."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def make_signing_key(common_name: str) -> SigningKey:
    """A fresh P-256 key with a self-signed cert, valid from yesterday for a week.

    Back-dating the start absorbs clock skew between us and the registry.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return SigningKey(private_key=key, certificate=cert)


# ------------------------------------------------------------------------ scopes


@dataclass(frozen=True)
class ResourceScope:
    """One ``type:name:actions`` entry of the scope grammar."""

    type: str
    name: str
    actions: frozenset[str]

    def to_claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}

    def to_scope_string(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scope(text: str) -> ResourceScope | None:
    """Parse one scope; the name may itself contain ':' (host:port), so split on both ends."""
    head, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and head and name):
        return None
    wanted = frozenset(a for a in actions.split(",") if a)
    return ResourceScope(type=head, name=name, actions=wanted)


def parse_scopes(values: Iterable[str]) -> list[ResourceScope]:
    """Parse scope parameters, each possibly space-separated, merging actions per resource."""
    merged: dict[tuple[str, str], set[str]] = {}
    for value in values:
        for item in value.split():
            scope = parse_scope(item)
            if scope is not None:
                merged.setdefault((scope.type, scope.name), set()).update(scope.actions)
    return [ResourceScope(t, n, frozenset(a)) for (t, n), a in merged.items()]


# ------------------------------------------------------------------------ policy


@dataclass(frozen=True)
class AccessPolicy:
    """Who may do what: anonymous pulls public repos, the one user may do anything."""

    username: str = "alice"
    password: str = "wonderland"
    is_private: Callable[[str], bool] = default_is_private

    def check_password(self, username: str, password: str) -> bool:
        return secrets.compare_digest(username, self.username) and secrets.compare_digest(
            password, self.password
        )

    def allowed_actions(self, account: str | None, scope: ResourceScope) -> frozenset[str]:
        if scope.type == "repository" or scope.type.startswith("repository("):
            if account == self.username:
                return REPOSITORY_ACTIONS
            return frozenset() if self.is_private(scope.name) else PUBLIC_ACTIONS
        if scope.type == "registry" and scope.name == "catalog" and account == self.username:
            return frozenset({"*"})
        # Unknown resource types get nothing, as the token spec asks.
        return frozenset()

    def grant(self, account: str | None, scopes: Iterable[ResourceScope]) -> list[ResourceScope]:
        """Intersect asked and allowed actions; resources left with no action are dropped."""
        granted = []
        for scope in scopes:
            actions = scope.actions & self.allowed_actions(account, scope)
            if actions:
                granted.append(ResourceScope(scope.type, scope.name, actions))
        return granted


# --------------------------------------------------------------------------- log


@dataclass(frozen=True)
class IssuerRequest:
    """One request the issuer served, as tests want to inspect it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    has_authorization: bool
    form: Mapping[str, list[str]]  # the password value is replaced by "***"
    status: int
    account: str | None = None  # authenticated user, None for anonymous or failure
    granted: tuple[str, ...] = ()  # granted scopes, "type:name:actions"

    @property
    def scopes(self) -> list[str]:
        """Requested scopes, flattened from GET query or POST form."""
        raw = self.query.get("scope", []) + self.form.get("scope", [])
        return [item for value in raw for item in value.split()]


class AuthError(Exception):
    """Raised inside the handler to answer 401 or 400 with a JSON body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class _TokenResult:
    body: dict[str, Any]
    account: str | None
    granted: list[ResourceScope] = field(default_factory=list)


# ------------------------------------------------------------------------ issuer


class TokenIssuer:
    """Token server on 127.0.0.1 with a random port, serving from a daemon thread."""

    def __init__(
        self,
        *,
        service: str = "test-registry",
        issuer_name: str = "test-issuer",
        policy: AccessPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        require_client_id: bool = True,
    ) -> None:
        self.service = service
        self.issuer_name = issuer_name
        self.policy = policy or AccessPolicy()
        self.require_client_id = require_client_id
        self.signing_key = make_signing_key(f"{issuer_name} token signer")
        self._ssl_context = ssl_context
        self._host = host
        self._lock = threading.Lock()
        self._log: list[IssuerRequest] = []
        self._refresh_tokens: dict[str, str] = {}  # refresh token -> account
        self._server: StandInServer | None = None

    # -- lifecycle

    def start(self) -> TokenIssuer:
        self._server = StandInServer(
            _make_handler(self), host=self._host, ssl_context=self._ssl_context, name="token-issuer"
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> TokenIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("issuer is not running")
        return self._server.port

    @property
    def scheme(self) -> str:
        return "https" if self._ssl_context is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self._host}:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def write_cert_bundle(self, path: Path) -> Path:
        """Write the signing cert where the registry's ``rootcertbundle`` will read it."""
        path.write_bytes(self.signing_key.cert_pem)
        return path

    # -- log

    def requests(self) -> list[IssuerRequest]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, entry: IssuerRequest) -> None:
        with self._lock:
            self._log.append(entry)

    # -- tokens

    def mint_token(
        self,
        scopes: Iterable[str],
        *,
        account: str | None = None,
        service: str | None = None,
    ) -> str:
        """Sign a token in-process (no HTTP, not logged), still applying the access policy."""
        granted = self.policy.grant(account, parse_scopes(scopes))
        return self._sign(account, service or self.service, granted)

    def _sign(self, account: str | None, audience: str, granted: list[ResourceScope]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer_name,
            "sub": account or "",
            "aud": audience,
            "exp": now + TOKEN_TTL_S,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [scope.to_claim() for scope in granted],
        }
        headers = {"kid": self.signing_key.key_id, "x5c": self.signing_key.x5c}
        return jwt.encode(claims, self.signing_key.private_key, algorithm="ES256", headers=headers)

    def _new_refresh_token(self, account: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._refresh_tokens[token] = account
        return token

    def _account_for_refresh_token(self, token: str) -> str | None:
        with self._lock:
            return self._refresh_tokens.get(token)

    def _token_body(
        self, account: str | None, service: str, granted: list[ResourceScope]
    ) -> dict[str, Any]:
        token = self._sign(account, service, granted)
        issued_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_TTL_S,
            "issued_at": issued_at,
            "scope": " ".join(scope.to_scope_string() for scope in granted),
        }

    def handle_get(self, query: Mapping[str, list[str]], authorization: str | None) -> _TokenResult:
        """GET /token: Basic credentials optional, wrong ones are a 401."""
        account = self._basic_account(authorization)
        service = _first(query, "service") or self.service
        granted = self.policy.grant(account, parse_scopes(query.get("scope", [])))
        body = self._token_body(account, service, granted)
        if _first(query, "offline_token") == "true" and account is not None:
            body["refresh_token"] = self._new_refresh_token(account)
        return _TokenResult(body, account, granted)

    def handle_post(self, form: Mapping[str, list[str]]) -> _TokenResult:
        """POST /token (OAuth2): password or refresh_token grants."""
        if self.require_client_id and not _first(form, "client_id"):
            raise AuthError(400, "invalid_request", "client_id is required")
        grant_type = _first(form, "grant_type")
        refresh_token: str | None = None
        if grant_type == "password":
            username, password = _first(form, "username") or "", _first(form, "password") or ""
            if not self.policy.check_password(username, password):
                raise AuthError(401, "invalid_grant", "invalid username or password")
            account = username
            if _first(form, "access_type") == "offline":
                refresh_token = self._new_refresh_token(account)
        elif grant_type == "refresh_token":
            presented = _first(form, "refresh_token") or ""
            found = self._account_for_refresh_token(presented)
            if found is None:
                raise AuthError(401, "invalid_grant", "unknown refresh token")
            account = found
            # The OAuth spec: a refresh grant hands back the same refresh token, never a new one.
            refresh_token = presented
        else:
            raise AuthError(400, "unsupported_grant_type", f"unsupported grant_type {grant_type!r}")
        service = _first(form, "service") or self.service
        granted = self.policy.grant(account, parse_scopes(form.get("scope", [])))
        body = self._token_body(account, service, granted)
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        return _TokenResult(body, account, granted)

    def _basic_account(self, authorization: str | None) -> str | None:
        """The authenticated user, None for anonymous; bad Basic credentials raise 401."""
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            # Other schemes (a stale Bearer, say) are ignored as the request is then anonymous.
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise AuthError(401, "UNAUTHORIZED", "malformed basic credentials") from exc
        username, _, password = decoded.partition(":")
        if not self.policy.check_password(username, password):
            raise AuthError(401, "UNAUTHORIZED", "invalid username or password")
        return username


def _first(values: Mapping[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found else None


def _redact(form: Mapping[str, list[str]]) -> dict[str, list[str]]:
    return {k: ([REDACTED] * len(v) if k == "password" else list(v)) for k, v in form.items()}


def _make_handler(issuer: TokenIssuer) -> type[AnyMethodHandler]:
    class Handler(AnyMethodHandler):
        server_version = "test-token-issuer"

        def serve(self) -> None:
            method = self.command
            if method not in ("GET", "POST"):
                self.send_error(501, f"Unsupported method ({method!r})")
                return
            parsed = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
            form = self._read_form() if method == "POST" else {}
            authorization = self.headers.get("Authorization")
            account: str | None = None
            granted: list[ResourceScope] = []
            if parsed.path != "/token":
                status, body = 404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]}
            else:
                try:
                    if method == "GET":
                        result = issuer.handle_get(query, authorization)
                    else:
                        result = issuer.handle_post(form)
                    status, body = 200, result.body
                    account, granted = result.account, result.granted
                except AuthError as err:
                    status, body = err.status, _error_body(err)
            issuer._record(
                IssuerRequest(
                    method=method,
                    path=parsed.path,
                    query=query,
                    has_authorization=authorization is not None,
                    form=_redact(form),
                    status=status,
                    account=account,
                    granted=tuple(scope.to_scope_string() for scope in granted),
                )
            )
            self._send_json(status, body, basic_challenge=status == 401 and method == "GET")

        def _read_form(self) -> dict[str, list[str]]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8") if length else ""
            return urllib.parse.parse_qs(raw, keep_blank_values=True)

        def _send_json(self, status: int, body: dict[str, Any], *, basic_challenge: bool) -> None:
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if basic_challenge:
                self.send_header("WWW-Authenticate", f'Basic realm="{issuer.issuer_name}"')
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def _error_body(err: AuthError) -> dict[str, Any]:
    """Both error shapes clients look for: registry-style ``errors`` and OAuth2 ``error``."""
    return {
        "errors": [{"code": err.code.upper(), "message": err.message}],
        "error": err.code,
        "error_description": err.message,
    }
