package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.UnknownFieldSet;
import dev.bidscore.v1.Candidate;
import dev.bidscore.v1.ScoreRequest;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The client's request writer writes protobuf-java's bytes, with the id it is given. */
class RequestMarshallerTest {

  static List<ScoreRequest> requests() {
    List<ScoreRequest> requests = new ArrayList<>();
    requests.add(ScoreRequest.getDefaultInstance());
    requests.add(ScoreRequest.newBuilder().setRequestId("only-id").build());
    requests.add(ScoreRequest.newBuilder().addModels("ctr").addModels("").addModels("cvr")
        .addCandidates(Candidate.getDefaultInstance())
        .addCandidates(Candidate.newBuilder().setId(""))
        .putContext("", "").putContext("k", "").putContext("", "v").build());
    requests.add(ScoreRequest.newBuilder().setRequestId("ünï-çødé ✓ 😀")
        .putContext("país", "España 🇪🇸").addCandidates(Candidate.newBuilder().setId("ad-é")
            .putFeatures("ключ", "значение")).build());
    Random random = new Random(7);
    for (int r = 0; r < 50; r++) {
      ScoreRequest.Builder request = ScoreRequest.newBuilder().setRequestId("req-" + r);
      int contextEntries = random.nextInt(12);
      for (int i = 0; i < contextEntries; i++) {
        request.putContext("ctx_" + i, "x".repeat(random.nextInt(300)));
      }
      int candidates = random.nextInt(40);
      for (int c = 0; c < candidates; c++) {
        Candidate.Builder candidate = Candidate.newBuilder().setId("ad-" + c);
        int features = random.nextInt(30);
        for (int f = 0; f < features; f++) {
          candidate.putFeatures("feature_" + f, Integer.toString(random.nextInt()));
        }
        request.addCandidates(candidate);
      }
      if (random.nextBoolean()) {
        request.addModels("ctr");
      }
      if (random.nextBoolean()) {
        request.addModels("cvr");
      }
      requests.add(request.build());
    }
    return requests;
  }

  private static byte[] drain(InputStream stream) throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ((io.grpc.Drainable) stream).drainTo(out);
    return out.toByteArray();
  }

  @Test
  void fastPathIsOnForTheseGeneratedClasses() {
    assertTrue(RequestMarshaller.FAST);
  }

  @Test
  void writesProtobufJavasBytes() throws Exception {
    for (ScoreRequest request : requests()) {
      byte[] expected = request.toByteArray();
      assertArrayEquals(expected, RequestMarshaller.encode(request, request.getRequestId()));
      InputStream stream = RequestMarshaller.REQUEST.stream(request);
      assertEquals(expected.length, stream.available());
      assertArrayEquals(expected, drain(stream));
    }
  }

  @Test
  void writesTheWireIdInsteadOfTheRequestsOwn() throws Exception {
    for (ScoreRequest request : requests()) {
      for (String wireId : new String[] {"1", "zz9", ""}) {
        byte[] expected = request.toBuilder().setRequestId(wireId).build().toByteArray();
        assertArrayEquals(expected, drain(RequestMarshaller.OUTBOUND.stream(
            new RequestMarshaller.Outbound(request, wireId))));
      }
      assertEquals(request.getRequestId(), requests().get(requests().indexOf(request))
          .getRequestId()); // the caller's request is not changed
    }
  }

  @Test
  void requestsWithUnknownFieldsGoThroughProtobufJava() throws Exception {
    UnknownFieldSet unknown = UnknownFieldSet.newBuilder().addField(99,
        UnknownFieldSet.Field.newBuilder().addVarint(5).build()).build();
    ScoreRequest request = ScoreRequest.newBuilder().setRequestId("a").setUnknownFields(unknown)
        .addCandidates(Candidate.newBuilder().setId("c").setUnknownFields(unknown)).build();
    byte[] expected = request.toBuilder().setRequestId("w").build().toByteArray();
    InputStream stream =
        RequestMarshaller.OUTBOUND.stream(new RequestMarshaller.Outbound(request, "w"));
    assertArrayEquals(expected, stream.readAllBytes());
    assertEquals(request, ScoreRequest.parseFrom(RequestMarshaller.REQUEST.stream(request)));
  }
}
