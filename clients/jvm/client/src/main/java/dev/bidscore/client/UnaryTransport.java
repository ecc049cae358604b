package dev.bidscore.client;

import dev.bidscore.v1.ScoreRequest;
import dev.bidscore.v1.ScoreResponse;
import dev.bidscore.v1.ScorerGrpc;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import java.nio.channels.ClosedChannelException;
import java.util.concurrent.TimeUnit;

/** One unary {@code Score} call per attempt, with the budget as its gRPC deadline. */
final class UnaryTransport implements Transport {
  private final ManagedChannel channel;

  UnaryTransport(ManagedChannel channel) {
    this.channel = channel;
  }

  @Override
  public void send(ScoreRequest request, long deadlineNanos, Reply reply) {
    long remaining = deadlineNanos - System.nanoTime();
    ClientCall<ScoreRequest, ScoreResponse> call =
        channel.newCall(
            ScorerGrpc.getScoreMethod(),
            CallOptions.DEFAULT.withDeadlineAfter(Math.max(remaining, 0), TimeUnit.NANOSECONDS));
    try {
      call.start(new Listener(reply), new Metadata());
      call.sendMessage(request);
      call.halfClose();
      call.request(1);
    } catch (RuntimeException e) {
      call.cancel("send failed", e);
    }
  }

  /** gRPC's deadline timer (on the channel's event loop) ends the call at the budget. */
  @Override
  public boolean answersByDeadline() {
    return true;
  }

  @Override
  public void close() {}

  private static final class Listener extends ClientCall.Listener<ScoreResponse> {
    private final Reply reply;
    private ScoreResponse response;

    Listener(Reply reply) {
      this.reply = reply;
    }

    @Override
    public void onMessage(ScoreResponse message) {
      response = message;
    }

    @Override
    public void onClose(Status status, Metadata trailers) {
      if (status.isOk() && response != null) {
        reply.onResponse(response);
      } else {
        reply.onError(status.isOk() ? Status.INTERNAL.withDescription("no response")
            : transportFailureAsUnavailable(status));
      }
    }
  }

  /**
   * {@code status}, or UNAVAILABLE when it is grpc-java's report of a connection that closed
   * under the call: Netty gives a write to a reset connection as UNKNOWN "channel closed"
   * with a {@link ClosedChannelException} as the cause (grpc-java issues 10120 and 10474),
   * where a peer that went away is UNAVAILABLE everywhere else. The client resends only
   * UNAVAILABLE, so without this a target killed mid-call failed the calls it held. A
   * server's own UNKNOWN (an exception in its handler) has no local cause and stays UNKNOWN.
   */
  static Status transportFailureAsUnavailable(Status status) {
    if (status.getCode() == Status.Code.UNKNOWN
        && status.getCause() instanceof ClosedChannelException) {
      return Status.UNAVAILABLE.withDescription("connection closed: " + status.getDescription())
          .withCause(status.getCause());
    }
    return status;
  }
}
