"""The mesh in front of real model servers: MLServer (sklearn) and Triton (python backend)
behind the built-in adapter, models pulled from a real S3 server, two pods."""

import struct

import grpc
import pytest

from harness.models import IRIS_SAMPLES, iris_request
from harness.models import iris_classes as classes
from harness.pod import RuntimePod
from harness.s3_models import s3_key
from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_mesh_pb2 as pb
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from modelmesh.protos.model_mesh_pb2_grpc import ModelMeshStub

TC = '{"mt:sklearn": {"required": ["mt:sklearn"]}, "mt:python": {"required": ["mt:python"]}}'


@pytest.fixture
def pods(tmp_path, etcd, storage_config_dir):
    started = []

    def start(name, server_type, labels):
        pod = RuntimePod(tmp_path, name, server_type, etcd.endpoint, storage_config_dir,
                         mesh_env={"MM_LABELS": labels, "MM_TYPE_CONSTRAINTS": TC, "MM_SERVICE_NAME": "real"})
        started.append(pod)
        return pod.start()

    yield start
    for pod in started:
        pod.stop()
    problems = [p for pod in started for p in pod.mesh.problems()]
    if problems:
        pytest.fail("mesh instances misbehaved:\n" + "\n".join(problems[:20]), pytrace=False)


async def test_mlserver_and_triton_pods_serve_models_from_s3(pods, s3_models):
    pods("pod-mlserver", "mlserver", "mt:sklearn")
    tri = pods("pod-triton", "triton", "mt:python")
    async with grpc.aio.insecure_channel(tri.mesh.target) as ch:  # enter through the *other* pod
        mesh, infer = ModelMeshStub(ch), GRPCInferenceServiceStub(ch)
        await mesh.registerModel(pb.RegisterModelRequest(
            modelId="iris__isvc-1", modelInfo=pb.ModelInfo(type="mt:sklearn", path=s3_models["iris"],
                                                           key=s3_key("sklearn"))))
        resp = await infer.ModelInfer(iris_request("iris"), metadata=[("mm-model-id", "iris__isvc-1")], timeout=120)
        assert classes(resp) == [c for _, c in IRIS_SAMPLES]
        st = await mesh.getModelStatus(pb.GetStatusRequest(modelId="iris__isvc-1"))
        assert [ci.location for ci in st.modelCopyInfos] == ["loc-pod-mlserver"]  # placed by type constraint

        await mesh.registerModel(pb.RegisterModelRequest(
            modelId="doubler__isvc-2", modelInfo=pb.ModelInfo(type="mt:python", path=s3_models["doubler"],
                                                              key=s3_key("python"))))
        req = v2.ModelInferRequest(model_name="doubler")
        req.inputs.add(name="INPUT0", datatype="FP32", shape=[3])
        req.raw_input_contents.append(struct.pack("<3f", 1.0, 2.0, 3.0))
        resp = await infer.ModelInfer(req, metadata=[("mm-model-id", "doubler__isvc-2")], timeout=120)
        assert struct.unpack("<3f", resp.raw_output_contents[0]) == (2.0, 4.0, 6.0)

        # V2 health as tritonclient asks it: the server RPCs answered by the mesh, ModelReady
        # routed by its name to the server holding the model (the adapters list no ModelReady).
        assert (await infer.ServerReady(v2.ServerReadyRequest(), timeout=10)).ready
        assert (await infer.ServerLive(v2.ServerLiveRequest(), timeout=10)).live
        for model_id in ("iris__isvc-1", "doubler__isvc-2"):
            assert (await infer.ModelReady(v2.ModelReadyRequest(name=model_id), timeout=60)).ready, model_id

        # A corrupt model: LOADING_FAILED with the model server's reason, nothing else affected.
        st = await mesh.registerModel(pb.RegisterModelRequest(
            modelId="corrupt__isvc-3", modelInfo=pb.ModelInfo(type="mt:sklearn", path=s3_models["corrupt"],
                                                              key=s3_key("sklearn")), loadNow=True, sync=True))
        assert st.status == pb.ModelStatusInfo.LOADING_FAILED and st.errors
        resp = await infer.ModelInfer(iris_request("iris"), metadata=[("mm-model-id", "iris__isvc-1")], timeout=60)
        assert classes(resp) == [c for _, c in IRIS_SAMPLES]
