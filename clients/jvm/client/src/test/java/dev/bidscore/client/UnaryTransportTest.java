package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.grpc.Status;
import java.nio.channels.ClosedChannelException;
import org.junit.jupiter.api.Test;

/** How the unary transport reports a connection that closed under a call. */
class UnaryTransportTest {
  @Test
  void aClosedChannelIsUnavailableSoTheCallIsResent() {
    ClosedChannelException closed = new ClosedChannelException();
    Status netty = Status.UNKNOWN.withDescription("channel closed").withCause(closed);
    Status mapped = UnaryTransport.transportFailureAsUnavailable(netty);
    assertEquals(Status.Code.UNAVAILABLE, mapped.getCode());
    assertSame(closed, mapped.getCause());
  }

  @Test
  void aServersOwnUnknownStaysUnknown() {
    Status server = Status.UNKNOWN.withDescription("Exception calling application");
    assertSame(server, UnaryTransport.transportFailureAsUnavailable(server));
    Status other = Status.UNKNOWN.withCause(new IllegalStateException("x"));
    assertSame(other, UnaryTransport.transportFailureAsUnavailable(other));
    Status invalid = Status.INVALID_ARGUMENT.withCause(new ClosedChannelException());
    assertSame(invalid, UnaryTransport.transportFailureAsUnavailable(invalid));
  }
}
