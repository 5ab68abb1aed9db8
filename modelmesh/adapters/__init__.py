"""Built-in adapters: the ModelRuntime SPI in front of Triton, MLServer, OVMS or TorchServe.

`runtime.ModelRuntimeServicer` is generic; one driver module per model server
(`triton`, `mlserver`, `ovms`, `torchserve`) speaks that server's own control API, and the
pure layout functions in `layouts/` turn pulled files into the directory the server wants.
"""
