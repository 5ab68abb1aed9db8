"""modelmesh: serve thousands of models on a few pods, with the pods' memory as one
distributed LRU cache (a Python re-implementation of KServe ModelMesh Serving)."""

__version__ = "0.1.0"
