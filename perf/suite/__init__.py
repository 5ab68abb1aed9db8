"""The perf suite: `python -m perf run [SCENARIO...] [--quick] [--out DIR]`.

Each scenario drives real processes (etcd, mesh instances, adapters, model servers) through
the existing benchmarks in perf/, and returns one Record: the figures it measured, the floors
measured in the same run (direct to the runtime, the bare gRPC hop, raw etcd puts, the load
generator against a null server) and the ratio of each machine-dependent figure to its floor.
"""
