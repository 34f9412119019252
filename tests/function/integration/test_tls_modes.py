"""What each DB_SSLMODE sends to a server that is not the database: an impostor on loopback
that speaks just enough of Postgres's protocol to ask for the password, and records what it
gets."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pg8000.native
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from login_etl.adapters.postgres.connection import (
    ConnectionParams,
    PasswordNotSentError,
    connect,
)
from login_etl.config import ConfigurationError, Settings
from tests.postgres_helpers import params

PASSWORD = "hunter2-Secret-Pw"
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
TERMINATE = struct.pack("!ci", b"X", 4)
CLEARTEXT = struct.pack("!cii", b"R", 8, 3)
MD5 = struct.pack("!cii", b"R", 12, 5) + b"salt"
SCRAM = b"SCRAM-SHA-256\x00\x00"
SASL = struct.pack("!cii", b"R", 8 + len(SCRAM), 10) + SCRAM
SCRAM_PLUS = b"SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00"
SASL_PLUS = struct.pack("!cii", b"R", 8 + len(SCRAM_PLUS), 10) + SCRAM_PLUS
# AuthenticationOk at once, then ReadyForQuery: no password asked, nothing proved.
NO_AUTHENTICATION = struct.pack("!cii", b"R", 8, 0) + struct.pack("!cic", b"Z", 5, b"I")


@dataclass
class Impostor:
    """A server on loopback with a certificate of its own making, asking ``request``."""

    request: bytes
    cert: Path
    key: Path
    port: int = 0
    received: bytearray = field(default_factory=bytearray)
    tls: bool = False

    def serve(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        conn.settimeout(10)
        try:
            first = _read(conn, 8)
            if first == SSL_REQUEST:
                conn.sendall(b"S")
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(self.cert, self.key)
                conn = context.wrap_socket(conn, server_side=True)
                self.tls = True
                first = _read(conn, 8)
            length = struct.unpack("!i", first[:4])[0]
            _read(conn, length - 8)  # the rest of the startup message: user, database
            conn.sendall(self.request)
            # The client's one answer (a password, a SCRAM message, a goodbye), or its hang-up;
            # then the impostor hangs up, and the client's wait for more ends.
            header = b""
            while len(header) < 5 and (chunk := conn.recv(5 - len(header))):
                header += chunk
            self.received += header
            if len(header) == 5:
                self.received += _read(conn, struct.unpack("!i", header[1:])[0] - 4)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: its own CA."""
    folder = tmp_path_factory.mktemp("impostor")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def impostor(request: pytest.FixtureRequest, certificate: tuple[Path, Path]) -> Iterator[Impostor]:
    server = Impostor(request.param, *certificate)
    listener = socket.create_server(("127.0.0.1", 0))
    server.port = listener.getsockname()[1]
    thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    thread.start()
    yield server
    thread.join(timeout=15)
    listener.close()


def params_for(server: Impostor) -> ConnectionParams:
    return ConnectionParams(
        "127.0.0.1", server.port, "login_etl_function", PASSWORD, "logins", connect_timeout_s=5
    )


def connect_to(server: Impostor, sslmode: str, root_cert: Path | None = None) -> None:
    cert = None if root_cert is None else str(root_cert)
    connect(replace(params_for(server), sslmode=sslmode, ssl_root_cert=cert)).close()


@pytest.mark.parametrize("impostor", [CLEARTEXT, MD5, SASL], indirect=True)
def test_verify_full_sends_nothing_to_a_server_it_cannot_verify(impostor: Impostor) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        connect_to(impostor, "verify-full")
    assert impostor.received == b""  # not even the startup message (the server's read)


@pytest.mark.parametrize("impostor", [CLEARTEXT], indirect=True)
def test_verify_full_with_the_servers_ca_answers_it(impostor: Impostor) -> None:
    """The bundle in DB_SSL_ROOT_CERT makes the server verified: then it gets the password."""
    with pytest.raises(pg8000.native.InterfaceError):  # the impostor closes after the password
        connect_to(impostor, "verify-full", root_cert=impostor.cert)
    assert impostor.tls
    assert PASSWORD.encode() in impostor.received


@pytest.mark.parametrize("impostor", [CLEARTEXT, MD5], indirect=True)
def test_require_never_sends_a_password_or_its_md5(impostor: Impostor) -> None:
    with pytest.raises(PasswordNotSentError) as refused:
        connect_to(impostor, "require")
    assert impostor.tls
    assert impostor.received in (b"", TERMINATE)  # no password message, only goodbye
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize("impostor", [SASL], indirect=True)
def test_require_refuses_scram_without_channel_binding(impostor: Impostor) -> None:
    with pytest.raises(PasswordNotSentError):
        connect_to(impostor, "require")
    assert impostor.received in (b"", TERMINATE)


@pytest.mark.parametrize("impostor", [SASL_PLUS], indirect=True)
def test_require_answers_scram_bound_to_the_channel_which_reveals_nothing(
    impostor: Impostor,
) -> None:
    with pytest.raises(pg8000.native.InterfaceError):  # the impostor cannot go on
        connect_to(impostor, "require")
    assert impostor.tls
    assert b"SCRAM-SHA-256-PLUS" in impostor.received  # the client's first SCRAM message
    assert b"p=tls-server-end-point" in impostor.received  # bound to the impostor's channel
    assert PASSWORD.encode() not in impostor.received


@pytest.mark.parametrize("impostor", [NO_AUTHENTICATION], indirect=True)
def test_require_sends_nothing_to_a_server_that_skips_authentication(impostor: Impostor) -> None:
    with contextlib.suppress(pg8000.native.InterfaceError, OSError):
        conn = connect(replace(params_for(impostor), sslmode="require", connect_timeout_s=2))
        with contextlib.suppress(pg8000.native.InterfaceError, OSError):
            conn.run("SELECT 'a batch of rows'")
    assert impostor.tls
    assert b"a batch of rows" not in impostor.received


@pytest.mark.parametrize("impostor", [CLEARTEXT], indirect=True)
def test_disable_sends_the_password_in_clear_hence_local_stacks_only(impostor: Impostor) -> None:
    with pytest.raises(pg8000.native.InterfaceError):
        connect_to(impostor, "disable")
    assert not impostor.tls
    assert PASSWORD.encode() in impostor.received


@dataclass
class Relay:
    """A man in the middle: TLS of its own to the client, the bytes passed on to the real
    database (which a relay may reach without TLS: a server that does not force it)."""

    target: tuple[str, int]
    cert: Path
    key: Path
    port: int = 0
    seen: bytearray = field(default_factory=bytearray)  # what it reads in clear

    def serve(self, listener: socket.socket) -> None:
        client, _ = listener.accept()
        client.settimeout(10)
        try:
            if _read(client, 8) != SSL_REQUEST:
                return
            client.sendall(b"S")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.cert, self.key)
            client = context.wrap_socket(client, server_side=True)
            server = socket.create_connection(self.target, timeout=10)
        except (OSError, ssl.SSLError):
            client.close()
            return
        threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
        self._pump(client, server)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                self.seen += chunk
                sink.sendall(chunk)
        except (OSError, ssl.SSLError):
            pass
        finally:
            source.close()
            sink.close()


@pytest.fixture
def relay(db: pg8000.native.Connection, certificate: tuple[Path, Path]) -> Iterator[Relay]:
    real = params()
    server = Relay((real.host, real.port), *certificate)
    listener = socket.create_server(("127.0.0.1", 0))
    server.port = listener.getsockname()[1]
    thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    thread.start()
    yield server
    listener.close()


def query(target: ConnectionParams, statement: str) -> None:
    conn = connect(target)
    try:
        conn.run(statement)
    finally:
        conn.close()


def test_require_gets_no_session_through_a_relay_that_terminates_tls(relay: Relay) -> None:
    """The proof is for the real server, and a relay makes it so: only channel binding
    (SCRAM-SHA-256-PLUS, the client's TLS end tied into the proof) tells the two apart."""
    through_relay = replace(params(), host="127.0.0.1", port=relay.port, sslmode="require")
    with pytest.raises(pg8000.native.InterfaceError):
        query(through_relay, "SELECT 'rows the relay reads in clear'")
    assert b"rows the relay reads in clear" not in relay.seen


def test_a_root_cert_file_that_holds_no_certificate_fails_the_cold_start(tmp_path: Path) -> None:
    bundle = tmp_path / "rds-ca.pem"
    bundle.write_text("<html>403 Forbidden</html>\n")  # a download that went wrong
    env = {
        "DATABASE_URL": "postgresql://u:p@db.example/logins",
        "DATA_KEY_CIPHERTEXT": "x",
        "DB_SSLMODE": "verify-full",
        "DB_SSL_ROOT_CERT": str(bundle),
    }
    with pytest.raises(ConfigurationError, match="DB_SSL_ROOT_CERT"):
        Settings.from_env(env)
