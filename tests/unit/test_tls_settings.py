"""No silent TLS downgrade: every bad TLS setting of the mesh, the REST proxy and the
controller's webhook stops `modelmesh` with exit 2 and one line naming the setting (real CLI
processes), and good material loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness.pki import MESH_DNS_NAME, make_mesh_pki

from modelmesh.config.mesh import MeshSettings
from modelmesh.config.settings import SettingsError, load_settings
from modelmesh.config.tls import load_identity, pem_certificate_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    paths = make_mesh_pki(d)
    (d / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    (d / "empty.pem").write_text("")
    paths["garbage"], paths["empty"], paths["missing"] = d / "garbage.pem", d / "empty.pem", d / "no-such.pem"
    return paths


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "REST_PROXY_", "WEBHOOK_"))}
    full.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "modelmesh.cli", *args], env=full, check=False, capture_output=True, text=True,
                          timeout=60)


def _mesh_cases(p):
    good = {"MM_TLS_KEY_CERT_PATH": str(p["mesh.crt"]), "MM_TLS_PRIVATE_KEY_PATH": str(p["mesh.key"])}
    return [
        ({**good, "MM_TLS_CLIENT_AUTH": "required"}, "MM_TLS_CLIENT_AUTH"),
        ({**good, "MM_TLS_CLIENT_AUTH": "yes"}, "MM_TLS_CLIENT_AUTH"),
        ({"MM_TLS_KEY_CERT_PATH": str(p["mesh.crt"])}, "MM_TLS_PRIVATE_KEY_PATH"),
        ({"MM_TLS_PRIVATE_KEY_PATH": str(p["mesh.key"])}, "MM_TLS_KEY_CERT_PATH"),
        ({**good, "MM_TLS_KEY_CERT_PATH": str(p["missing"])}, "MM_TLS_KEY_CERT_PATH"),
        ({**good, "MM_TLS_KEY_CERT_PATH": str(p["garbage"])}, "MM_TLS_KEY_CERT_PATH"),
        ({**good, "MM_TLS_KEY_CERT_PATH": str(p["empty"])}, "MM_TLS_KEY_CERT_PATH"),
        ({**good, "MM_TLS_KEY_CERT_PATH": str(p["mesh.key"])}, "MM_TLS_KEY_CERT_PATH"),  # a key, not a cert
        ({**good, "MM_TLS_PRIVATE_KEY_PATH": str(p["garbage"])}, "MM_TLS_PRIVATE_KEY_PATH"),
        ({**good, "MM_TLS_PRIVATE_KEY_PATH": str(p["client.key"])}, "MM_TLS_PRIVATE_KEY_PATH"),  # not its key
        ({**good, "MM_TLS_CLIENT_AUTH": "require", "MM_TLS_TRUST_CERT_PATH": f"{p['ca.crt']},{p['missing']}"},
         "MM_TLS_TRUST_CERT_PATH"),
        ({**good, "MM_TLS_CLIENT_AUTH": "require", "MM_TLS_TRUST_CERT_PATH": str(p["garbage"])},
         "MM_TLS_TRUST_CERT_PATH"),
        ({"MM_TLS_CLIENT_AUTH": "require", "MM_TLS_TRUST_CERT_PATH": str(p["ca.crt"])}, "MM_TLS_CLIENT_AUTH"),
        ({"MM_TLS_TRUST_CERT_PATH": str(p["ca.crt"])}, "MM_TLS_TRUST_CERT_PATH"),
    ]


def test_every_bad_mesh_tls_setting_exits_2_naming_it(pki):
    for env, name in _mesh_cases(pki):
        r = _cli(["runtime"], env)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, (env, r.stderr)
        assert len(lines) == 1 and name in lines[0], (env, r.stderr)


def test_rest_proxy_and_webhook_tls_settings_exit_2_naming_them(pki, tmp_path):
    cases = [
        ({"MM_TLS_KEY_CERT_PATH": str(pki["mesh.crt"])}, "MM_TLS_PRIVATE_KEY_PATH"),
        ({"MM_TLS_KEY_CERT_PATH": str(pki["garbage"]), "MM_TLS_PRIVATE_KEY_PATH": str(pki["mesh.key"])},
         "MM_TLS_KEY_CERT_PATH"),
        ({"MM_TLS_KEY_CERT_PATH": str(pki["mesh.crt"]), "MM_TLS_PRIVATE_KEY_PATH": str(pki["mesh.key"]),
          "MM_TLS_CLIENT_AUTH": "always"}, "MM_TLS_CLIENT_AUTH"),
        ({"REST_PROXY_USE_TLS": "true", "REST_PROXY_GRPC_CA_PATH": str(pki["missing"])}, "REST_PROXY_GRPC_CA_PATH"),
        ({"REST_PROXY_USE_TLS": "true", "REST_PROXY_GRPC_CA_PATH": str(pki["garbage"])}, "REST_PROXY_GRPC_CA_PATH"),
    ]
    for env, name in cases:
        r = _cli(["runtime", "rest-proxy"], env)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and name in r.stderr, (env, r.stderr)

    only_cert = tmp_path / "only-cert"
    only_cert.mkdir()
    (only_cert / "tls.crt").write_bytes(pki["mesh.crt"].read_bytes())
    bad_key = tmp_path / "bad-key"
    bad_key.mkdir()
    (bad_key / "tls.crt").write_bytes(pki["mesh.crt"].read_bytes())
    (bad_key / "tls.key").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    for directory in (only_cert, bad_key):
        r = _cli(["controller"], {"WEBHOOK_CERT_DIR": str(directory)})
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "WEBHOOK_CERT_DIR" in r.stderr, r.stderr


def test_good_material_loads_with_the_name_peers_check(pki):
    env = {"MM_TLS_KEY_CERT_PATH": str(pki["mesh.crt"]), "MM_TLS_PRIVATE_KEY_PATH": str(pki["mesh.key"]),
           "MM_TLS_CLIENT_AUTH": "REQUIRE", "MM_TLS_TRUST_CERT_PATH": f"{pki['mesh.crt']}, {pki['ca.crt']}"}
    s = load_settings(MeshSettings, env)
    tls = s.server_tls()
    assert tls.client_auth == "require"
    assert tls.identity.name == MESH_DNS_NAME
    assert tls.trusted.count(b"BEGIN CERTIFICATE") == 2
    assert tls.roots.count(b"BEGIN CERTIFICATE") == 3
    assert load_settings(MeshSettings, {}).server_tls() is None  # no TLS asked for: plaintext as before
    assert pem_certificate_name(pki["client.crt"].read_text()) == "a-client"  # no SAN: the CN
    assert pem_certificate_name("not a certificate") == ""
    assert tls.identity.client_usable  # serverAuth + clientAuth: peers can present it


def test_a_server_only_certificate_is_flagged(tmp_path):
    from harness.etcd_secure import make_pki  # openssl-made; extendedKeyUsage=serverAuth only

    p = make_pki(tmp_path)
    identity = load_identity(str(p["server.crt"]), "C", str(p["server.key"]), "K")
    assert identity is not None and not identity.client_usable and identity.name == "localhost"


def test_client_auth_values_are_the_references(pki):
    good = {"MM_TLS_KEY_CERT_PATH": str(pki["mesh.crt"]), "MM_TLS_PRIVATE_KEY_PATH": str(pki["mesh.key"])}
    for raw, want in (("", "none"), ("NONE", "none"), ("Optional", "optional"), ("require", "require")):
        assert load_settings(MeshSettings, {**good, "MM_TLS_CLIENT_AUTH": raw}).tls_client_auth == want
    with pytest.raises(SettingsError, match=r"^invalid MM_TLS_CLIENT_AUTH='need': expected one of"):
        load_settings(MeshSettings, {"MM_TLS_CLIENT_AUTH": "need"})


PASSPHRASE = "s3cret-Pass phrase"


@pytest.fixture(scope="module")
def encrypted(pki) -> dict[str, Path]:
    """mesh.key encrypted by `cryptography` (PKCS#8, and traditional OpenSSL PEM) and by openssl."""
    from cryptography.hazmat.primitives import serialization as ser

    from harness.pki import encrypt_key_openssl

    key = ser.load_pem_private_key(pki["mesh.key"].read_bytes(), password=None)
    d = pki["mesh.key"].parent
    out = {}
    for name, fmt in (("pkcs8", ser.PrivateFormat.PKCS8), ("traditional", ser.PrivateFormat.TraditionalOpenSSL)):
        out[name] = d / f"mesh-{name}.key"
        out[name].write_bytes(key.private_bytes(ser.Encoding.PEM, fmt, ser.BestAvailableEncryption(PASSPHRASE.encode())))
    out["openssl-pkcs8"] = encrypt_key_openssl(pki["mesh.key"], d / "mesh-openssl-pkcs8.key", PASSPHRASE)
    out["openssl-traditional"] = encrypt_key_openssl(pki["mesh.key"], d / "mesh-openssl-trad.key", PASSPHRASE,
                                                     traditional=True)
    assert b"ENCRYPTED PRIVATE KEY" in out["pkcs8"].read_bytes()
    assert b"Proc-Type: 4,ENCRYPTED" in out["traditional"].read_bytes()
    assert b"Proc-Type: 4,ENCRYPTED" in out["openssl-traditional"].read_bytes()
    return out


def test_an_encrypted_mesh_key_without_its_passphrase_exits_2_naming_the_variable(pki, encrypted):
    for kind in ("pkcs8", "traditional"):
        base = {"MM_TLS_KEY_CERT_PATH": str(pki["mesh.crt"]), "MM_TLS_PRIVATE_KEY_PATH": str(encrypted[kind])}
        for passphrase in (None, "", "wrong passphrase"):
            env = base if passphrase is None else {**base, "MM_TLS_PRIVATE_KEY_PASSPHRASE": passphrase}
            r = _cli(["runtime"], env)
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2, (kind, passphrase, r.stderr)
            assert len(lines) == 1 and "MM_TLS_PRIVATE_KEY_PASSPHRASE" in lines[0], (kind, passphrase, r.stderr)
            assert "Traceback" not in r.stderr
            if passphrase:
                assert passphrase not in r.stderr and "does not decrypt" in lines[0], r.stderr
            else:
                assert "the key is encrypted" in lines[0], r.stderr


def test_an_encrypted_mesh_key_is_decrypted_in_memory(pki, encrypted):
    from cryptography.hazmat.primitives import serialization as ser

    plain = ser.load_pem_private_key(pki["mesh.key"].read_bytes(), password=None)
    for kind, path in encrypted.items():
        s = load_settings(MeshSettings, {"MM_TLS_KEY_CERT_PATH": str(pki["mesh.crt"]),
                                         "MM_TLS_PRIVATE_KEY_PATH": str(path),
                                         "MM_TLS_PRIVATE_KEY_PASSPHRASE": PASSPHRASE})
        handed_on = s.server_tls().identity.private_key
        assert b"ENCRYPTED" not in handed_on, kind  # grpc gets the decrypted key
        key = ser.load_pem_private_key(handed_on, password=None)
        assert key.private_numbers() == plain.private_numbers(), kind
        assert PASSPHRASE not in repr(s)  # a secret: out of the settings' repr
    # A passphrase for a key that is not encrypted goes unused (as the reference's key reader).
    s = load_settings(MeshSettings, {"MM_TLS_KEY_CERT_PATH": str(pki["mesh.crt"]),
                                     "MM_TLS_PRIVATE_KEY_PATH": str(pki["mesh.key"]),
                                     "MM_TLS_PRIVATE_KEY_PASSPHRASE": PASSPHRASE})
    assert s.server_tls().identity.private_key == pki["mesh.key"].read_bytes()
    # A passphrase is taken as given (as the reference); a trailing line break is pointed out.
    with pytest.raises(SettingsError, match=r"^invalid MM_TLS_PRIVATE_KEY_PASSPHRASE: .*ends with a line break"):
        load_settings(MeshSettings, {"MM_TLS_KEY_CERT_PATH": str(pki["mesh.crt"]),
                                     "MM_TLS_PRIVATE_KEY_PATH": str(encrypted["pkcs8"]),
                                     "MM_TLS_PRIVATE_KEY_PASSPHRASE": PASSPHRASE + "\n"})
    # No TLS asked for: the passphrase alone changes nothing.
    assert load_settings(MeshSettings, {"MM_TLS_PRIVATE_KEY_PASSPHRASE": PASSPHRASE}).server_tls() is None


def test_the_rest_proxy_reads_no_passphrase(pki, encrypted):
    """The reference's REST proxy (Go, tls.LoadX509KeyPair) takes no passphrase: an encrypted
    key there is a start-up error naming the key's setting, passphrase variable or not."""
    r = _cli(["runtime", "rest-proxy"], {"MM_TLS_KEY_CERT_PATH": str(pki["mesh.crt"]),
                                         "MM_TLS_PRIVATE_KEY_PATH": str(encrypted["pkcs8"]),
                                         "MM_TLS_PRIVATE_KEY_PASSPHRASE": PASSPHRASE})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "MM_TLS_PRIVATE_KEY_PATH" in lines[0] and "encrypted" in lines[0], r.stderr
