package dev.bidscore.client;

import com.google.protobuf.CodedOutputStream;
import dev.bidscore.v1.ScoreRequest;
import io.grpc.Drainable;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import io.grpc.protobuf.ProtoUtils;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * The stream transport's request writer: the caller's {@link ScoreRequest} as protobuf-java
 * writes it, followed by one more {@code request_id} field, the transport's client-unique wire
 * id. A parser keeps the last value of a non-repeated field (the protobuf encoding spec), so
 * the server reads the wire id; the request is neither copied nor re-sized (it was
 * {@code request.toBuilder().setRequestId(wireId).build()} per message, about 8% of the stream
 * client's CPU per call in a profile).
 */
final class RequestMarshaller {
  private RequestMarshaller() {}

  /** What goes on the wire: {@code request}, read by the server with {@code wireId} as its id. */
  static final class Outbound {
    final ScoreRequest request;
    final String wireId;

    Outbound(ScoreRequest request, String wireId) {
      this.request = request;
      this.wireId = wireId;
    }
  }

  private static final MethodDescriptor.Marshaller<ScoreRequest> GENERIC =
      ProtoUtils.marshaller(ScoreRequest.getDefaultInstance());

  static final MethodDescriptor.Marshaller<Outbound> OUTBOUND =
      new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(Outbound outbound) {
          return new Stream(outbound);
        }

        @Override
        public Outbound parse(InputStream stream) {
          ScoreRequest request = GENERIC.parse(stream);
          return new Outbound(request, request.getRequestId());
        }
      };

  /**
   * gRPC's framer asks for the length ({@link KnownLength}) and then drains the message into
   * its buffers in one go ({@link Drainable}); reading it byte by byte (only a non-gRPC caller
   * would) goes through a serialized copy.
   */
  private static final class Stream extends InputStream implements Drainable, KnownLength {
    private final Outbound outbound;
    private final int size;
    private InputStream copy; // only if read() is used
    private boolean drained;

    Stream(Outbound outbound) {
      this.outbound = outbound;
      size = outbound.request.getSerializedSize()
          + CodedOutputStream.computeStringSize(1, outbound.wireId);
    }

    @Override
    public int drainTo(OutputStream target) throws IOException {
      if (drained || copy != null) {
        return copy == null ? 0 : (int) copy.transferTo(target);
      }
      drained = true;
      CodedOutputStream out = CodedOutputStream.newInstance(target,
          Math.min(size, CodedOutputStream.DEFAULT_BUFFER_SIZE));
      outbound.request.writeTo(out);
      out.writeString(1, outbound.wireId);
      out.flush();
      return size;
    }

    @Override
    public int available() {
      if (copy != null) {
        try {
          return copy.available();
        } catch (IOException e) {
          return 0;
        }
      }
      return drained ? 0 : size;
    }

    @Override
    public int read() throws IOException {
      return bytes().read();
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      return bytes().read(b, off, len);
    }

    private InputStream bytes() throws IOException {
      if (copy == null) {
        java.io.ByteArrayOutputStream buffer = new java.io.ByteArrayOutputStream(size);
        if (!drained) {
          drainTo(buffer);
        }
        copy = new java.io.ByteArrayInputStream(buffer.toByteArray());
      }
      return copy;
    }
  }
}
