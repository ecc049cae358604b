"""The bidscore scoring server: grpc.aio on uvloop, N workers on one port, hot-reloaded models.

Modules: `config` (settings), `cli` (`control serve` / `python -m pyserver`), `workers`
(fork + SO_REUSEPORT), `server` (one worker's lifecycle), `service` (the Score handler),
`health`, `metrics`, `modelset` (atomic swap), `reloader` (poll, fetch, verify, warm up),
`artifacts` (local cache), `serving_features` (the plan and fingerprints), `python_features`
(@property features, request parsing).
"""
