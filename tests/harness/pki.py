"""Certificates for TLS tests, made in-process with `cryptography` (EC P-256: fast).

`make_mesh_pki(dir)` writes:
  ca.crt / ca.key           the CA a service trusts (MM_TLS_TRUST_CERT_PATH)
  mesh.crt / mesh.key       the certificate every instance of one service shares (server and
                            client use, issued by ca), as the controller mounts it
  self.crt / self.key       a self-signed shared certificate (the secret without a CA)
  client.crt / client.key   a client certificate issued by ca
  rogue.crt / rogue.key     a client certificate from another CA nobody trusts

`encrypt_key_openssl(key, out, passphrase, traditional)` writes a key encrypted by the openssl
CLI (PKCS#8 or traditional OpenSSL PEM), for MM_TLS_PRIVATE_KEY_PASSPHRASE.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MESH_DNS_NAME = "modelmesh-serving.test.svc"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key, issuer_name: x509.Name, issuer_key, *, ca: bool = False,
           san: list[x509.GeneralName] | None = None, usages=()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key) -> None:
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def make_mesh_pki(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    new_key = lambda: ec.generate_private_key(ec.SECP256R1())
    ca_key, rogue_ca_key = new_key(), new_key()
    ca = _issue("test-mesh-ca", ca_key, _name("test-mesh-ca"), ca_key, ca=True)
    _write(directory, "ca", ca, ca_key)
    both = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    san = [x509.DNSName(MESH_DNS_NAME), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    mesh_key = new_key()
    _write(directory, "mesh", _issue("modelmesh-serving", mesh_key, ca.subject, ca_key, san=san, usages=both), mesh_key)
    self_key = new_key()
    _write(directory, "self", _issue("modelmesh-serving", self_key, _name("modelmesh-serving"), self_key, ca=True,
                                     san=san), self_key)
    client_key = new_key()
    _write(directory, "client", _issue("a-client", client_key, ca.subject, ca_key,
                                       usages=(ExtendedKeyUsageOID.CLIENT_AUTH,)), client_key)
    rogue_key = new_key()
    _write(directory, "rogue", _issue("rogue", rogue_key, _name("rogue-ca"), rogue_ca_key,
                                      usages=(ExtendedKeyUsageOID.CLIENT_AUTH,)), rogue_key)
    return {f"{n}.{ext}": directory / f"{n}.{ext}" for n in ("ca", "mesh", "self", "client", "rogue")
            for ext in ("crt", "key")}


def encrypt_key_openssl(key: Path, out: Path, passphrase: str, traditional: bool = False) -> Path:
    """`key` encrypted with `passphrase` by the openssl CLI: PKCS#8 (`ENCRYPTED PRIVATE KEY`,
    PBES2 AES-256-CBC), or traditional OpenSSL PEM (`Proc-Type: 4,ENCRYPTED`, AES-256-CBC)."""
    if traditional:
        args = ["pkey", "-in", key, "-out", out, "-aes256", "-traditional"]
    else:
        args = ["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", key, "-out", out]
    subprocess.run(["openssl", *map(str, args), "-passout", f"pass:{passphrase}"], check=True, capture_output=True)
    return out
