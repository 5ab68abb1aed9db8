"""The serving mesh: one instance per runtime pod; together a distributed LRU cache of
models coordinated through the KV store (etcd)."""
