package dev.bidscore.client;

import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import dev.bidscore.v1.Candidate;
import dev.bidscore.v1.ScoreRequest;
import io.grpc.Drainable;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import io.grpc.protobuf.ProtoUtils;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Map;

/**
 * Writes a {@link ScoreRequest} onto the wire with a given {@code request_id} (the stream
 * transport's client-unique id, or the request's own), without copying the request.
 *
 * <p>Why not protobuf-java's {@code writeTo}: it writes each entry of a {@code map<string,
 * string>} by building a map-entry message and sizing it through reflection-like generic code,
 * and a request's cost is mostly its feature maps (the profile in docs/clients.md: a third of
 * the client's CPU per call went to serializing the request). This writes the same bytes as
 * {@code writeTo} (every field in number order, map entries with key and value, in the map's
 * order; the tests compare the bytes) straight from the accessors. It is used only when
 * {@link #FAST} holds: the generated classes have exactly the fields written here and the
 * request carries no unknown fields; otherwise the request (with its id set) goes through
 * protobuf-java.
 */
final class RequestMarshaller {
  private RequestMarshaller() {}

  /** What goes on the wire: {@code request} with {@code wireId} as its request_id. */
  static final class Outbound {
    final ScoreRequest request;
    final String wireId;

    Outbound(ScoreRequest request, String wireId) {
      this.request = request;
      this.wireId = wireId;
    }
  }

  /**
   * True if ScoreRequest and Candidate have exactly the fields this class writes (a proto
   * change that adds one turns the fast path off until this class learns it).
   */
  static final boolean FAST = hasExactly(ScoreRequest.getDescriptor(),
      "request_id", 1, "context", 2, "candidates", 3, "models", 4)
      && hasExactly(Candidate.getDescriptor(), "id", 1, "features", 2);

  private static final MethodDescriptor.Marshaller<ScoreRequest> GENERIC =
      ProtoUtils.marshaller(ScoreRequest.getDefaultInstance());

  /** For unary Score: the request as it is. */
  static final MethodDescriptor.Marshaller<ScoreRequest> REQUEST =
      new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(ScoreRequest request) {
          return RequestMarshaller.stream(request, request.getRequestId());
        }

        @Override
        public ScoreRequest parse(InputStream stream) {
          return GENERIC.parse(stream);
        }
      };

  /** For ScoreStream: the request with the transport's wire id. */
  static final MethodDescriptor.Marshaller<Outbound> OUTBOUND =
      new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(Outbound outbound) {
          return RequestMarshaller.stream(outbound.request, outbound.wireId);
        }

        @Override
        public Outbound parse(InputStream stream) {
          ScoreRequest request = GENERIC.parse(stream);
          return new Outbound(request, request.getRequestId());
        }
      };

  static InputStream stream(ScoreRequest request, String wireId) {
    if (!FAST || hasUnknownFields(request.getUnknownFields())
        || hasUnknownFields(request.getCandidatesList())) {
      ScoreRequest onWire = wireId.equals(request.getRequestId())
          ? request : request.toBuilder().setRequestId(wireId).build();
      return GENERIC.stream(onWire);
    }
    return new Bytes(encode(request, wireId));
  }

  private static boolean hasUnknownFields(List<Candidate> candidates) {
    for (int i = 0; i < candidates.size(); i++) {
      if (hasUnknownFields(candidates.get(i).getUnknownFields())) {
        return true;
      }
    }
    return false;
  }

  private static boolean hasUnknownFields(com.google.protobuf.UnknownFieldSet fields) {
    // A message built with a builder shares the empty default set: no map view to make.
    return fields != com.google.protobuf.UnknownFieldSet.getDefaultInstance()
        && !fields.asMap().isEmpty();
  }

  /** The bytes protobuf-java's writeTo would write for {@code request} with id {@code wireId}. */
  static byte[] encode(ScoreRequest request, String wireId) {
    List<Candidate> candidates = request.getCandidatesList();
    int n = candidates.size();
    int[] candidateSizes = new int[n];
    int size = 0;
    if (!wireId.isEmpty()) {
      size += CodedOutputStream.computeStringSize(1, wireId);
    }
    size += mapSize(2, request.getContextMap());
    for (int i = 0; i < n; i++) {
      Candidate candidate = candidates.get(i);
      int candidateSize = 0;
      if (!candidate.getId().isEmpty()) {
        candidateSize += CodedOutputStream.computeStringSize(1, candidate.getId());
      }
      candidateSize += mapSize(2, candidate.getFeaturesMap());
      candidateSizes[i] = candidateSize;
      size += CodedOutputStream.computeTagSize(3)
          + CodedOutputStream.computeUInt32SizeNoTag(candidateSize) + candidateSize;
    }
    List<String> models = request.getModelsList();
    for (int i = 0; i < models.size(); i++) {
      size += CodedOutputStream.computeStringSize(4, models.get(i));
    }
    byte[] bytes = new byte[size];
    CodedOutputStream out = CodedOutputStream.newInstance(bytes);
    try {
      if (!wireId.isEmpty()) {
        out.writeString(1, wireId);
      }
      writeMap(out, 2, request.getContextMap());
      for (int i = 0; i < n; i++) {
        Candidate candidate = candidates.get(i);
        out.writeTag(3, com.google.protobuf.WireFormat.WIRETYPE_LENGTH_DELIMITED);
        out.writeUInt32NoTag(candidateSizes[i]);
        if (!candidate.getId().isEmpty()) {
          out.writeString(1, candidate.getId());
        }
        writeMap(out, 2, candidate.getFeaturesMap());
      }
      for (int i = 0; i < models.size(); i++) {
        out.writeString(4, models.get(i));
      }
      out.checkNoSpaceLeft();
    } catch (IOException e) {
      throw new UncheckedIOException(e); // an array encoder does not do I/O
    }
    return bytes;
  }

  private static int entrySize(String key, String value) {
    return CodedOutputStream.computeStringSize(1, key)
        + CodedOutputStream.computeStringSize(2, value);
  }

  private static int mapSize(int field, Map<String, String> map) {
    if (map.isEmpty()) {
      return 0;
    }
    int tag = CodedOutputStream.computeTagSize(field);
    int size = 0;
    for (Map.Entry<String, String> entry : map.entrySet()) {
      int entrySize = entrySize(entry.getKey(), entry.getValue());
      size += tag + CodedOutputStream.computeUInt32SizeNoTag(entrySize) + entrySize;
    }
    return size;
  }

  private static void writeMap(CodedOutputStream out, int field, Map<String, String> map)
      throws IOException {
    if (map.isEmpty()) {
      return;
    }
    for (Map.Entry<String, String> entry : map.entrySet()) {
      String key = entry.getKey();
      String value = entry.getValue();
      out.writeTag(field, com.google.protobuf.WireFormat.WIRETYPE_LENGTH_DELIMITED);
      out.writeUInt32NoTag(entrySize(key, value));
      out.writeString(1, key);
      out.writeString(2, value);
    }
  }

  private static boolean hasExactly(Descriptor descriptor, Object... namesAndNumbers) {
    List<FieldDescriptor> fields = descriptor.getFields();
    if (fields.size() != namesAndNumbers.length / 2) {
      return false;
    }
    for (int i = 0; i < namesAndNumbers.length; i += 2) {
      FieldDescriptor field = descriptor.findFieldByName((String) namesAndNumbers[i]);
      if (field == null || field.getNumber() != (Integer) namesAndNumbers[i + 1]) {
        return false;
      }
    }
    return true;
  }

  /** Encoded bytes that gRPC's framer copies in one write (it asks for the length first). */
  private static final class Bytes extends ByteArrayInputStream implements Drainable,
      KnownLength {
    Bytes(byte[] bytes) {
      super(bytes);
    }

    @Override
    public int drainTo(OutputStream target) throws IOException {
      int length = count - pos;
      target.write(buf, pos, length);
      pos = count;
      return length;
    }
  }
}
