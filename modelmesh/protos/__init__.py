"""Generated gRPC stubs (rebuilt by `make protos` from protos/*.proto). Do not edit the
*_pb2* modules by hand; this file is the only hand-written one here."""
