"""TLS material named by settings: read, parsed and paired once, at start-up.

A process that was asked for TLS either gets all of it or does not start: an unknown
client-auth mode, a certificate without its key (or the reverse), an unreadable file, a file
that is not PEM, or a key that does not belong to its certificate is a SettingsError naming
the setting (the CLI exits 2 with that one line), never a silent fall-back to plaintext or to
serving without client authentication.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelmesh.config.settings import SettingsError, parse_csv

CLIENT_AUTH_MODES = ("none", "optional", "require")


def parse_client_auth(raw: str) -> str:
    """MM_TLS_CLIENT_AUTH: none | optional | require, any case (the reference's values); empty = none."""
    value = raw.strip().lower()
    if value == "":
        return "none"
    if value not in CLIENT_AUTH_MODES:
        raise ValueError(f"expected one of {', '.join(CLIENT_AUTH_MODES)}")
    return value


@dataclass(frozen=True)
class TlsIdentity:
    """A certificate chain and its private key (PEM), and a name the certificate is issued for."""

    cert_chain: bytes
    private_key: bytes
    name: str
    client_usable: bool = True  # False: its extended key usage leaves out clientAuth


@dataclass(frozen=True)
class ServerTls:
    identity: TlsIdentity
    client_auth: str  # none | optional | require
    trusted: bytes | None  # PEM bundle of the trust setting; None when not given

    @property
    def roots(self) -> bytes:
        """Whose certificates are accepted (client auth, peers): the holders of our own
        certificate (the instances of one service, the REST proxy beside them share it; the
        reference's controller trusts tls.crt too) and whatever the trust bundle issued."""
        return self.identity.cert_chain + (b"\n" + self.trusted if self.trusted else b"")


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SettingsError(f"invalid {setting}={path!r}: cannot read it: {e.strerror or e}") from None


def read_certificates(path: str, setting: str) -> tuple[bytes, list[x509.Certificate]]:
    """The PEM file at `path` and the certificates in it; at least one, all parseable."""
    data = _read(path, setting)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise SettingsError(f"invalid {setting}={path!r}: not a PEM certificate ({e})") from None
    return data, certs


def read_private_key(path: str, setting: str, passphrase: str = "", passphrase_setting: str = ""):
    """The PEM key at `path` as PEM bytes for grpc (unencrypted) and the parsed key.

    An encrypted key (PKCS#8 `ENCRYPTED PRIVATE KEY`, or traditional OpenSSL PEM with
    `Proc-Type: 4,ENCRYPTED`) needs the passphrase; it is decrypted here, in memory only, and
    handed on as unencrypted PKCS#8. Where no passphrase setting exists (passphrase_setting "")
    an encrypted key is an error. A passphrase given for an unencrypted key is not needed and
    goes unused (the reference's BouncyCastle key reader does the same)."""
    data = _read(path, setting)
    password = passphrase.encode() if passphrase else None
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        if password is None:
            fix = f"set {passphrase_setting}" if passphrase_setting else "give an unencrypted PEM key"
            raise SettingsError(f"invalid {setting}={path!r}: the key is encrypted ({fix})") from None
        return read_private_key(path, setting)  # given a passphrase, but the key is not encrypted
    except ValueError as e:
        if password is not None and _encrypted_pem(data):
            hint = " (it ends with a line break, often left by a secret made from a file)" \
                if passphrase != passphrase.rstrip("\r\n") else ""
            raise SettingsError(f"invalid {passphrase_setting}: it does not decrypt the key in "
                                f"{setting}={path!r}{hint}") from None
        raise SettingsError(f"invalid {setting}={path!r}: not a PEM private key ({e})") from None
    except UnsupportedAlgorithm as e:
        raise SettingsError(f"invalid {setting}={path!r}: not a PEM private key ({e})") from None
    if password is not None:
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return data, key


def _encrypted_pem(data: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate_name(cert: x509.Certificate) -> str:
    """A name the certificate is valid for, for hostname checks: a DNS SAN, else the CN,
    else an IP SAN; "" when it names nothing."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        dns = san.get_values_for_type(x509.DNSName)
        if dns:
            return dns[0]
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cn and isinstance(cn[0].value, str):
        return cn[0].value
    if san is not None:
        ips = san.get_values_for_type(x509.IPAddress)
        if ips:
            return str(ipaddress.ip_address(ips[0]))
    return ""


def pem_certificate_name(pem: bytes | str) -> str:
    """certificate_name of the first certificate in `pem` ("" when it is not a certificate)."""
    try:
        return certificate_name(x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem))
    except ValueError:
        return ""


def load_identity(cert_path: str, cert_setting: str, key_path: str, key_setting: str,
                  passphrase: str = "", passphrase_setting: str = "") -> TlsIdentity | None:
    """The certificate + key pair, None when neither is set; both or neither must be set.
    `passphrase_setting` names where the key's passphrase comes from ("": encrypted keys are
    refused, as by the REST proxy and the controller, whose references read none)."""
    if not cert_path and not key_path:
        return None
    if not key_path:
        raise SettingsError(f"{key_setting} is required when {cert_setting} is set")
    if not cert_path:
        raise SettingsError(f"{cert_setting} is required when {key_setting} is set")
    chain, certs = read_certificates(cert_path, cert_setting)
    key_pem, key = read_private_key(key_path, key_setting, passphrase, passphrase_setting)
    if _public_der(key.public_key()) != _public_der(certs[0].public_key()):
        raise SettingsError(f"invalid {key_setting}={key_path!r}: the key does not belong to the certificate "
                            f"in {cert_setting}")
    return TlsIdentity(chain, key_pem, certificate_name(certs[0]), _client_usable(certs[0]))


def _client_usable(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages


def load_trust(paths: str, setting: str) -> bytes | None:
    """A comma-separated list of PEM certificate files (as the reference takes it), as one bundle."""
    files = parse_csv(paths)
    if not files:
        return None
    return b"\n".join(read_certificates(p, setting)[0].rstrip() for p in files) + b"\n"


@dataclass(frozen=True)
class TlsSettingNames:
    cert: str = "MM_TLS_KEY_CERT_PATH"
    key: str = "MM_TLS_PRIVATE_KEY_PATH"
    client_auth: str = "MM_TLS_CLIENT_AUTH"
    trust: str = "MM_TLS_TRUST_CERT_PATH"
    passphrase: str = ""  # the key's passphrase setting; "" = none (encrypted keys are refused)


def load_server_tls(cert_path: str, key_path: str, client_auth: str, trust_paths: str,
                    names: TlsSettingNames = TlsSettingNames(), passphrase: str = "") -> ServerTls | None:
    """A server's TLS, None when none is configured; client authentication or a trust bundle
    without a certificate is an error (it would otherwise serve plaintext to everyone). A
    passphrase without a key is unused, as the reference leaves it."""
    identity = load_identity(cert_path, names.cert, key_path, names.key, passphrase, names.passphrase)
    trusted = load_trust(trust_paths, names.trust)
    if identity is None:
        if client_auth != "none":
            raise SettingsError(f"{names.client_auth}={client_auth} needs TLS: set {names.cert} and {names.key}")
        if trusted is not None:
            raise SettingsError(f"{names.trust} is set but TLS is not: set {names.cert} and {names.key}")
        return None
    return ServerTls(identity, client_auth, trusted)
