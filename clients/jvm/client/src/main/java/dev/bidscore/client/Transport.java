package dev.bidscore.client;

import dev.bidscore.v1.ScoreRequest;
import dev.bidscore.v1.ScoreResponse;
import io.grpc.Status;

/**
 * How one attempt reaches one target: unary {@code Score} ({@link UnaryTransport}) or
 * multiplexed {@code ScoreStream}. The client owns budgets, retries and fallbacks; a transport
 * only sends and reports back.
 */
interface Transport extends AutoCloseable {

  /** Where an attempt's outcome goes: exactly one of the two methods, once, on any thread. */
  interface Reply {
    void onResponse(ScoreResponse response);

    void onError(Status status);
  }

  /**
   * Sends {@code request}, to be answered by {@code deadlineNanos} ({@link System#nanoTime()}).
   * Must not block, and must not throw (errors go to {@code reply}).
   */
  void send(ScoreRequest request, long deadlineNanos, Reply reply);

  /**
   * True if every attempt is answered by its deadline at the latest (the RPC carries it as its
   * gRPC deadline): the client then needs no timer of its own for a call's budget.
   */
  default boolean answersByDeadline() {
    return false;
  }

  @Override
  void close();
}
