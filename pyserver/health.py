"""grpc.health.v1 for load balancers: NOT_SERVING until every model is loaded and warmed, and
again (for good) once draining starts."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from pyserver.service import SERVICE_NAME

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# "" is the whole server (what ghz and most load balancers ask about).
_SERVICES = ("", SERVICE_NAME)


class Health:
    def __init__(self) -> None:
        self.servicer = HealthServicer()
        self.serving = False

    async def start(self) -> None:
        """The servicer starts out SERVING for ""; nothing is ready before the models are."""
        await self.set_serving(False)

    async def set_serving(self, serving: bool) -> None:
        self.serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in _SERVICES:
            await self.servicer.set(service, status)

    async def drain(self) -> None:
        """NOT_SERVING for every service; later `set_serving` calls are ignored."""
        self.serving = False
        await self.servicer.enter_graceful_shutdown()

    def add_to(self, server: grpc.aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)
