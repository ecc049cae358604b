"""Reference servers for bench/serving.py: the same Scorer proto, the same grpc.aio runtime."""
