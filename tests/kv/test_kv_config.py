"""KV_STORE values and etcd_connection files: what is accepted, and one-line errors."""

from __future__ import annotations

import json

import pytest

from modelmesh.kv import KVConfigError, mesh_key_prefix, open_store, parse_kv_store
from modelmesh.kv.etcd import EtcdStore

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_empty_setting_is_the_embedded_store():
    assert parse_kv_store("").kind == "embedded"
    assert parse_kv_store("  ").kind == "embedded"


def test_endpoints_inline():
    spec = parse_kv_store("etcd:http://10.0.0.1:2379, http://etcd-1:32379")
    assert spec.kind == "etcd"
    assert [str(e) for e in spec.etcd.endpoints] == ["http://10.0.0.1:2379", "http://etcd-1:32379"]
    assert not spec.etcd.tls
    assert parse_kv_store("etcd:https://etcd").etcd.endpoints[0].port == 2379


def test_connection_file_with_relative_certificate_files(tmp_path):
    (tmp_path / "ca.pem").write_text(PEM)
    (tmp_path / "client.pem").write_text(PEM)
    (tmp_path / "client.key").write_text("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    path = tmp_path / "etcd_connection"
    path.write_text(json.dumps({
        "endpoints": "https://etcd-a:2379,https://etcd-b:2379", "userid": "mm", "password": "pw",
        "root_prefix": "modelmesh-serving/", "certificate_file": "ca.pem",
        "client_certificate_file": "client.pem", "client_key_file": str(tmp_path / "client.key"),
        "override_authority": "etcd.example",
    }))
    conn = parse_kv_store(f"etcd:{path}").etcd
    assert conn.tls and len(conn.endpoints) == 2
    assert (conn.username, conn.password, conn.root_prefix) == ("mm", "pw", "modelmesh-serving")
    assert conn.ca_pem == PEM.encode() and conn.client_cert_pem == PEM.encode()
    assert conn.override_authority == "etcd.example"
    assert "pw" not in repr(conn)


def test_inline_certificate_and_inline_json():
    conn = parse_kv_store("etcd:" + json.dumps({"endpoints": "https://e:1", "certificate": PEM})).etcd
    assert conn.ca_pem == PEM.encode() and conn.client_key_pem is None


@pytest.mark.parametrize("value, message", [
    ("consul:http://x", "expected 'etcd:<path to etcd_connection JSON>'"),
    ("etcd:", "expected 'etcd:"),
    ("etcd:ftp://x:1", "must be http:// or https://"),
    ("etcd:http://h:notaport", "invalid port"),
    ("etcd:http://a:1,https://b:2", "mix http:// and https://"),
    ("etcd:http://h:1/path", "expected scheme://host:port"),
    ("etcd:/nonexistent/etcd_connection", "cannot read"),
])
def test_bad_settings_fail_with_one_line(value, message):
    with pytest.raises(KVConfigError) as info:
        parse_kv_store(value)
    text = str(info.value)
    assert "\n" not in text
    assert message in text


@pytest.mark.parametrize("doc, message", [
    ("not json", "invalid JSON"),
    ("[1]", "expected a JSON object"),
    ({}, "'endpoints' is required"),
    ({"endpoints": "http://e:1", "port": "2379"}, "unknown field(s) port"),
    ({"endpoints": "http://e:1", "userid": 5}, "must be a string"),
    ({"endpoints": "http://e:1", "password": "x"}, "'userid' is not"),
    ({"endpoints": "https://e:1", "certificate": PEM, "certificate_file": "f"}, "not both"),
    ({"endpoints": "https://e:1", "certificate": "garbage"}, "not a PEM block"),
    ({"endpoints": "https://e:1", "client_key": PEM}, "must be given together"),
    ({"endpoints": "http://e:1", "certificate": PEM}, "use https://"),
    ({"endpoints": "https://e:1", "certificate_file": "missing.pem"}, "cannot read"),
])
def test_bad_connection_files_name_the_problem(tmp_path, doc, message):
    path = tmp_path / "etcd_connection"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(KVConfigError) as info:
        parse_kv_store(f"etcd:{path}")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_mesh_key_prefix():
    assert mesh_key_prefix("modelmesh-serving", "mm", "modelmesh-serving") == "modelmesh-serving/mm/modelmesh-serving/"
    assert mesh_key_prefix("", "mm", "svc") == "mm/svc/"
    assert mesh_key_prefix("root/mm_ns/ns1/", "mm", "svc") == "root/mm_ns/ns1/mm/svc/"


async def test_open_store_builds_an_etcd_store_without_connecting():
    store = await open_store("etcd:http://127.0.0.1:1", None)
    assert isinstance(store, EtcdStore)
    await store.close()
    with pytest.raises(KVConfigError):
        await open_store("etcd:nope://", None)
