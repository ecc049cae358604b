package dev.bidscore.client;

import io.grpc.Status;

/**
 * How a call fails under {@link FallbackPolicy#fail()}: the future completes exceptionally with
 * this (still within the budget). Never thrown on the caller's thread.
 */
public final class ScoringException extends RuntimeException {
  private final FallbackReason reason;
  private final transient Status status;
  long elapsedNanos;
  long timerLatenessNanos;

  ScoringException(FallbackReason reason, Status status) {
    super(reason + (status == null ? "" : ": " + status.getCode() + " " + status.getDescription()),
        null, false, false);
    this.reason = reason;
    this.status = status;
  }

  public FallbackReason reason() {
    return reason;
  }

  /** From the score() call to this failure, on the client's clock (System.nanoTime()). */
  public long elapsedNanos() {
    return elapsedNanos;
  }

  /** The last gRPC status seen, or null (deadline, closed). */
  public Status status() {
    return status;
  }
}
