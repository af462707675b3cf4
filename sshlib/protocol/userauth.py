"""Client user authentication (RFC 4252, RFC 4256 keyboard-interactive).

Methods are tried in the order the config lists them, each only while the
server lists it as one that "can continue"; partial success simply updates
that list.  Signing and keyboard-interactive answers come from the front-end
through events, because an agent signature or a human answer is I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .. import algorithms as algs
from .. import messages as m
from ..config import AuthMethod, KeyboardInteractive, Password, Prompt, PublicKeys
from ..errors import AuthError, DecodeError, ProtocolError, SSHError
from ..keys.certs import Certificate, CertSigner, plain_algorithm
from ..wire import Reader, Writer, string
from .events import (
    AuthBannerReceived,
    AuthSucceeded,
    Event,
    PromptsRequested,
    SignatureRequested,
)

log = logging.getLogger("sshlib.userauth")

SERVICE_USERAUTH = "ssh-userauth"
SERVICE_CONNECTION = "ssh-connection"
MAX_PROMPTS = 64
METHOD_HOSTBOUND = "publickey-hostbound-v00@openssh.com"


@dataclass
class _Attempt:
    """One request we are about to make (or are in the middle of)."""

    method: str
    source: AuthMethod
    signer: object = None
    algorithm: str = ""


def _with_certificates(signers: Sequence[object]) -> Iterator[object]:
    """Each signer, preceded by its certificate when it has one (key.certificate), as
    OpenSSH offers a key's certificate before the plain key."""
    for signer in signers:
        cert = getattr(signer, "certificate", None)
        if isinstance(cert, Certificate) and not isinstance(signer, CertSigner):
            try:
                yield CertSigner(signer, cert)  # type: ignore[arg-type]
            except (ValueError, SSHError) as exc:
                log.info("not offering certificate %r: %s", cert.key_id, exc)
        yield signer


class UserAuth:
    """The client side of the ssh-userauth service."""

    def __init__(self, user: str, methods: Sequence[AuthMethod],
                 send: Callable[[bytes], None], server_sig_algs: Callable[[], list[str] | None],
                 rsa_sha1_allowed: bool, *, host_key_blob: bytes = b"",
                 session_signature: bytes = b"",
                 hostbound: Callable[[], bool] = lambda: False) -> None:
        self._user = user
        self._host_key_blob = host_key_blob
        self._session_signature = session_signature
        self._hostbound = hostbound
        self._send = send
        self._server_sig_algs = server_sig_algs
        self._rsa_sha1_allowed = rsa_sha1_allowed
        self._iters: list[tuple[AuthMethod, Iterator[_Attempt]]] = [
            (method, self._attempts(method)) for method in methods]
        self._allowed: list[str] | None = None  # unknown until the "none" reply
        self._current: _Attempt | None = None
        self._stage = "service"  # service -> none -> method-specific stages -> done
        self.session_id = b""
        self.done = False
        self.tried: list[str] = []

    # --- driving ---------------------------------------------------------------
    def start(self, session_id: bytes) -> None:
        self.session_id = session_id
        self._send(Writer(m.MSG_SERVICE_REQUEST).string(SERVICE_USERAUTH).getvalue())

    def handle(self, msg_type: int, payload: bytes) -> list[Event]:
        r = Reader(payload)
        r.byte()
        if msg_type == m.MSG_SERVICE_ACCEPT:
            if self._stage != "service":
                raise ProtocolError("unexpected SERVICE_ACCEPT")
            name = r.text()
            if name != SERVICE_USERAUTH:
                raise ProtocolError(f"server accepted service {name!r}, not ssh-userauth")
            self._stage = "none"
            self._request(b"none")
            return []
        if self._stage == "service":
            raise ProtocolError(f"unexpected {m.name(msg_type)} before SERVICE_ACCEPT")
        if msg_type == m.MSG_USERAUTH_BANNER:
            message = r.text()
            r.text()  # language tag
            return [AuthBannerReceived(message)]
        if msg_type == m.MSG_USERAUTH_SUCCESS:
            r.check_end()
            method = self._current.method if self._current else "none"
            self.done = True
            self._stage = "done"
            log.info("authenticated with %s", method)
            return [AuthSucceeded(method)]
        if msg_type == m.MSG_USERAUTH_FAILURE:
            allowed = r.name_list()
            partial = r.boolean()
            r.check_end()
            self._allowed = allowed
            if self._current is not None:
                log.info("%s authentication %s; server allows %s", self._current.method,
                         "partially succeeded" if partial else "failed", ",".join(allowed))
            return self._next()
        if msg_type == m.MSG_USERAUTH_PK_OK:
            return self._on_method_specific(r)
        if msg_type == m.MSG_USERAUTH_INFO_RESPONSE:
            raise ProtocolError("server sent USERAUTH_INFO_RESPONSE")
        raise ProtocolError(f"unexpected {m.name(msg_type)} during authentication")

    def provide_signature(self, signature: bytes) -> None:
        attempt = self._current
        if self._stage != "signing" or attempt is None:
            raise ProtocolError("no signature was requested")
        self._stage = "waiting"
        self._send(self._publickey_request(attempt, signature))

    def signature_failed(self) -> list[Event]:
        if self._stage != "signing":
            raise ProtocolError("no signature was requested")
        return self._next()

    def answer_prompts(self, answers: Sequence[str]) -> None:
        if self._stage != "prompting":
            raise ProtocolError("no keyboard-interactive prompts are pending")
        w = Writer(m.MSG_USERAUTH_INFO_RESPONSE).uint32(len(answers))
        for answer in answers:
            w.string(answer)
        self._stage = "waiting"
        self._send(w.getvalue())

    # --- internals -------------------------------------------------------------
    def _request(self, method: bytes, body: bytes = b"") -> None:
        self._send(Writer(m.MSG_USERAUTH_REQUEST).string(self._user)
                   .string(SERVICE_CONNECTION).string(method).raw(body).getvalue())

    def _next(self) -> list[Event]:
        allowed = self._allowed or []
        for method, attempts in self._iters:
            if method.method_name not in allowed:
                continue
            attempt = next(attempts, None)
            if attempt is None:
                continue
            return self._begin(attempt)
        self._current = None
        raise AuthError(
            f"authentication failed for user {self._user!r}: tried "
            f"{', '.join(self.tried) or 'nothing'}; "
            f"server allows {', '.join(allowed) or 'nothing'}",
            allowed=allowed, tried=self.tried)

    def _begin(self, attempt: _Attempt) -> list[Event]:
        self._current = attempt
        self.tried.append(attempt.method)
        self._stage = "waiting"
        if isinstance(attempt.source, Password):
            self._request(b"password", b"\x00" + string(attempt.source.password))
        elif isinstance(attempt.source, KeyboardInteractive):
            self._request(b"keyboard-interactive", string(b"") + string(b""))
        else:
            self._stage = "pk-query"
            self._send(self._publickey_request(attempt, None))
        return []

    def _attempts(self, method: AuthMethod) -> Iterator[_Attempt]:
        if isinstance(method, PublicKeys):
            for signer in _with_certificates(method.signers):
                for algorithm in self._pick_algorithms(signer):
                    yield _Attempt("publickey", method, signer, algorithm)
        elif isinstance(method, (Password, KeyboardInteractive)):
            yield _Attempt(method.method_name, method)

    def _pick_algorithms(self, signer: object) -> list[str]:
        """The signature algorithms to try with this key, in order (usually one)."""
        key = signer.public_key  # type: ignore[attr-defined]
        offered: tuple[str, ...] = key.signature_algorithms
        if len(offered) == 1:
            return [offered[0]]
        # RSA keys and certificates: rsa-sha2-512, rsa-sha2-256, then SHA-1 if allowed.
        candidates = [name for name in offered if self._rsa_sha1_allowed
                      or plain_algorithm(name) != algs.INSECURE_HOSTKEY_SSH_RSA]
        server = self._server_sig_algs()
        if server is None:
            # No server-sig-algs (old server): SHA-2 first, and if that is refused,
            # SHA-1 for users who allowed it (such servers often know nothing else).
            return [candidates[0], *[n for n in candidates[1:]
                                     if plain_algorithm(n) == algs.INSECURE_HOSTKEY_SSH_RSA]]
        for name in candidates:
            # server-sig-algs names the plain algorithms, also for certificates.
            if name in server or plain_algorithm(name) in server:
                return [name]
        log.info("skipping RSA key: server accepts none of %s", ",".join(candidates))
        return []

    def _publickey_request(self, attempt: _Attempt, signature: bytes | None,
                           signed: bool = False) -> bytes:
        """The request; with signed=True, the part the signature covers (RFC 4252 7)."""
        blob = attempt.signer.public_key.blob  # type: ignore[attr-defined]
        # publickey-hostbound-v00@openssh.com (PROTOCOL 2.5) when the server offers it:
        # the request names the server's host key, which lets an agent enforce
        # destination constraints (ssh-add -h).
        hostbound = self._hostbound() and bool(self._host_key_blob)
        w = (Writer(m.MSG_USERAUTH_REQUEST).string(self._user).string(SERVICE_CONNECTION)
             .string(METHOD_HOSTBOUND if hostbound else "publickey")
             .boolean(signed or signature is not None)
             .string(attempt.algorithm).string(blob))
        if hostbound:
            w.string(self._host_key_blob)
        if signature is not None:
            w.string(signature)
        return w.getvalue()

    def _on_method_specific(self, r: Reader) -> list[Event]:
        attempt = self._current
        if attempt is None:
            raise ProtocolError("unexpected message 60 with no authentication in progress")
        if attempt.method == "publickey" and self._stage == "pk-query":
            algorithm = r.text()
            blob = r.string()
            r.check_end()
            if blob != attempt.signer.public_key.blob:  # type: ignore[attr-defined]
                raise ProtocolError("PK_OK for a key we did not offer")
            # Some servers name the key type (ssh-rsa) instead of the algorithm we asked
            # for (rsa-sha2-256); the blob is what identifies the key.
            key_type = attempt.signer.public_key.key_type  # type: ignore[attr-defined]
            if algorithm not in (attempt.algorithm, key_type):
                raise ProtocolError("PK_OK for a different signature algorithm")
            self._stage = "signing"
            to_sign = string(self.session_id) + self._publickey_request(attempt, None, True)
            return [SignatureRequested(attempt.signer, attempt.algorithm, to_sign,
                                       self._host_key_blob, self.session_id,
                                       self._session_signature)]
        if attempt.method == "password":
            # PASSWD_CHANGEREQ: we cannot change passwords; count it as a failure.
            log.info("server asks for a password change; treating password auth as failed")
            return self._next()
        if attempt.method == "keyboard-interactive" and self._stage == "waiting":
            name = r.text()
            instruction = r.text()
            r.text()  # language tag
            count = r.uint32()
            if count > MAX_PROMPTS:
                raise DecodeError(f"keyboard-interactive: {count} prompts is too many")
            prompts = []
            for _ in range(count):
                text = r.text()
                prompts.append(Prompt(text, r.boolean()))
            r.check_end()
            self._stage = "prompting"
            assert isinstance(attempt.source, KeyboardInteractive)
            return [PromptsRequested(attempt.source.callback, name, instruction, prompts)]
        raise ProtocolError("unexpected message 60 during authentication")
