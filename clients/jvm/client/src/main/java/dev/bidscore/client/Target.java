package dev.bidscore.client;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * One {@code host:port}: its channel, its transport, and what its gRPC health service says,
 * followed with {@code Health/Watch} (re-watched with backoff when the watch breaks).
 */
final class Target implements AutoCloseable {
  private static final long MIN_BACKOFF_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
  private static final long MAX_BACKOFF_NANOS = TimeUnit.SECONDS.toNanos(2);

  enum Health {
    /** Not heard from yet: tried (optimistically). */
    UNKNOWN(true),
    SERVING(true),
    NOT_SERVING(false),
    /** The health watch broke (server gone or unreachable) and is being re-established. */
    DOWN(false),
    /** The server has no health service: always tried. */
    UNCHECKED(true);

    final boolean eligible;

    Health(boolean eligible) {
      this.eligible = eligible;
    }
  }

  final String address;
  final int index;
  final ManagedChannel channel;
  final Transport transport;
  private final String healthService;
  private final ScheduledExecutorService scheduler;
  private volatile Health health = Health.UNKNOWN;
  private volatile boolean closed;
  private long backoffNanos = MIN_BACKOFF_NANOS;

  Target(String address, int index, ManagedChannel channel, Transport transport,
      String healthService, ScheduledExecutorService scheduler) {
    this.address = address;
    this.index = index;
    this.channel = channel;
    this.transport = transport;
    this.healthService = healthService;
    this.scheduler = scheduler;
  }

  boolean eligible() {
    return health.eligible;
  }

  Health health() {
    return health;
  }

  void startHealthWatch() {
    if (healthService == null) {
      health = Health.UNCHECKED;
      return;
    }
    watch();
  }

  private void watch() {
    if (closed) {
      return;
    }
    HealthGrpc.newStub(channel)
        .watch(HealthCheckRequest.newBuilder().setService(healthService).build(),
            new StreamObserver<>() {
              @Override
              public void onNext(HealthCheckResponse reply) {
                synchronized (Target.this) {
                  backoffNanos = MIN_BACKOFF_NANOS;
                }
                health = reply.getStatus() == HealthCheckResponse.ServingStatus.SERVING
                    ? Health.SERVING : Health.NOT_SERVING;
              }

              @Override
              public void onError(Throwable error) {
                Status status = Status.fromThrowable(error);
                if (status.getCode() == Status.Code.UNIMPLEMENTED) {
                  health = Health.UNCHECKED;
                  return;
                }
                health = Health.DOWN;
                rewatch();
              }

              @Override
              public void onCompleted() {
                health = Health.DOWN;
                rewatch();
              }
            });
  }

  private void rewatch() {
    if (closed) {
      return;
    }
    long delay;
    synchronized (this) {
      delay = backoffNanos;
      backoffNanos = Math.min(backoffNanos * 2, MAX_BACKOFF_NANOS);
    }
    try {
      scheduler.schedule(this::watch, delay, TimeUnit.NANOSECONDS);
    } catch (java.util.concurrent.RejectedExecutionException closing) {
      // the client is closing
    }
  }

  @Override
  public void close() {
    closed = true;
    transport.close();
    channel.shutdownNow();
  }

  @Override
  public String toString() {
    return address + "(" + health + ")";
  }
}
