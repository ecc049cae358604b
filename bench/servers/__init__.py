"""Reference servers for bench/serving.py: the same Scorer proto, the same grpc.aio runtime.

They run on pyserver's gRPC core settings, set here before any of them imports grpc, so that
their rows compare like with like.
"""

from pyserver import grpc_core

grpc_core.configure()
