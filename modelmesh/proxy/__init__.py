"""The KServe V2 REST -> gRPC proxy that runs in each runtime pod (`modelmesh runtime rest-proxy`).

tensors: V2 datatype codec · parameters: InferParameter <-> JSON · infer_codec: infer
request/response JSON (and the binary tensor extension) <-> protobuf · errors: HTTP error
bodies and the gRPC -> HTTP status map · channel: the gRPC channel · handlers: the routes ·
server: the aiohttp site with metrics and access log.
"""
