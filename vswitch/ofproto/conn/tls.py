"""TLS for OpenFlow (ssl: and pssl: targets), as Open vSwitch's stream-ssl.

Design note.  The SSL row (vsctl set-ssl PRIVKEY CERT CACERT) names three
PEM files.  Both directions authenticate both ends: the switch presents its
certificate, and the peer must present one that chains to CACERT, or the
handshake fails (CERT_REQUIRED on the server and the client side).  TLS 1.2
is the oldest version accepted.  Names are not checked (OVS does not check
them either: trust comes from the CA alone).  There is no bootstrap of the
CA certificate (OVS's --bootstrap-ca-cert): CACERT must exist.

`check_files` is what set-ssl runs before it stores anything: each file
must be readable PEM of the right kind, and the key must belong to the
certificate; errors name the file.  `Contexts` holds the server and client
SSLContext built from one SSL row; the connection manager builds a new one
whenever the row changes.
"""
import asyncio
import os
import ssl
from dataclasses import dataclass

HANDSHAKE_TIMEOUT = 5.0  # seconds a peer has to complete the TLS handshake
MIN_VERSION = ssl.TLSVersion.TLSv1_2


class TLSConfigError(ValueError):
    """An SSL configuration the switch cannot use; the message names the file."""


@dataclass(frozen=True)
class SSLConfig:
    private_key: str
    certificate: str
    ca_cert: str

    @classmethod
    def from_row(cls, row):
        """The SSL table's row (or None) -> SSLConfig (or None)."""
        if not row:
            return None
        return cls(row["private_key"], row["certificate"], row["ca_cert"])


def files_state(config):
    """What says that the files changed under the same names (certificates
    are rotated in place): compared at every reconcile."""
    if config is None:
        return None
    state = []
    for path in (config.private_key, config.certificate, config.ca_cert):
        try:
            st = os.stat(path)
            state.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            state.append(None)
    return tuple(state)


_PEM_KINDS = {
    "private key": ("PRIVATE KEY-----",),       # BEGIN PRIVATE KEY / RSA / EC / ENCRYPTED
    "certificate": ("-----BEGIN CERTIFICATE-----",),
    "CA certificate": ("-----BEGIN CERTIFICATE-----",),
}


def _check_pem(path, what):
    if not os.path.isabs(path):
        raise TLSConfigError(f"{what} {path}: not an absolute path (the switch, not vsctl, reads the file)")
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except FileNotFoundError:
        raise TLSConfigError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise TLSConfigError(f"{what} {path}: is a directory") from None
    except OSError as exc:
        raise TLSConfigError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    text = data.decode("ascii", "replace")
    if not any(marker in text for marker in _PEM_KINDS[what]) or "-----BEGIN" not in text:
        raise TLSConfigError(f"{what} {path}: not a PEM {what} file")
    if what == "private key" and "ENCRYPTED" in text:
        raise TLSConfigError(f"{what} {path}: encrypted private keys are not supported")


def check_files(private_key, certificate, ca_cert):
    """Raises TLSConfigError naming the first file the switch could not use."""
    _check_pem(private_key, "private key")
    _check_pem(certificate, "certificate")
    _check_pem(ca_cert, "CA certificate")
    Contexts(SSLConfig(private_key, certificate, ca_cert))  # the key fits the certificate, all parse


def _context(purpose, config):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose == "server" else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = MIN_VERSION
    ctx.check_hostname = False          # as OVS: the CA is the trust, not names
    ctx.verify_mode = ssl.CERT_REQUIRED  # the peer must present a certificate from CACERT
    try:
        ctx.load_cert_chain(config.certificate, config.private_key, password=lambda: b"")
    except ssl.SSLError as exc:
        raise TLSConfigError(f"private key {config.private_key} and certificate {config.certificate}: "
                             f"cannot be used together ({exc.reason or exc})") from None
    except OSError as exc:
        raise TLSConfigError(f"certificate {config.certificate} or private key {config.private_key}: "
                             f"{exc.strerror or exc}") from None
    try:
        ctx.load_verify_locations(cafile=config.ca_cert)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"CA certificate {config.ca_cert}: cannot be loaded "
                             f"({getattr(exc, 'reason', None) or exc})") from None
    return ctx


class Contexts:
    """The server-side and client-side contexts of one SSL configuration."""

    def __init__(self, config):
        self.config = config
        self.server = _context("server", config)
        self.client = _context("client", config)


# TLS alerts by which a peer says it does not accept our certificate.
_REFUSED_US = {"TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
               "TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
               "SSLV3_ALERT_CERTIFICATE_EXPIRED", "SSLV3_ALERT_CERTIFICATE_REVOKED"}


def describe_failure(exc):
    """A handshake failure as one short line for the log."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"peer certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        if reason in _REFUSED_US:
            return f"the peer refused our certificate ({reason})"
        return reason
    if isinstance(exc, asyncio.TimeoutError):
        return f"no TLS handshake within {HANDSHAKE_TIMEOUT:g} s"
    return str(exc) or type(exc).__name__
