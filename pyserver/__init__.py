"""The bidscore scoring server: grpc.aio on uvloop, N workers on one port, hot-reloaded models.

Entry point: `pyserver.workers.run_server(ServerConfig(...))`; `control serve` builds the
config from its options. Nothing here imports `control`.

Modules: `config` (settings), `errors`, `workers` (fork + SO_REUSEPORT), `server` (one
worker's lifecycle), `service` (the Score handler), `health`, `metrics`, `modelset` (atomic
swap), `reloader` (poll, fetch, verify, warm up), `artifacts` (local cache),
`serving_features` (the plan and fingerprints), `python_features` (@property features, request
parsing), `predlog/` (the sampled prediction log and its files).
"""
