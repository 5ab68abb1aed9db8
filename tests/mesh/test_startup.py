"""Start-up order: nothing runs before the object it needs exists."""

from harness.mesh_client import model_info
from modelmesh.protos import model_mesh_pb2 as pb


async def test_instances_joining_one_after_another_log_no_errors(etcd, nodes, client_for):
    # Each instance sees the others' records arrive while it starts (the instances watch
    # fires during start-up); none may fail on a service that does not exist yet.
    cluster = [nodes(etcd, f"st{i}") for i in range(3)]
    c = client_for(cluster[2])
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="st-m", modelInfo=model_info()))
    assert (await c.infer("st-m")).model_name == "st-m"
    for node in cluster:
        assert node.mesh.problems() == []
