package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.bidscore.v1.Candidate;
import dev.bidscore.v1.ScoreRequest;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The stream's request writer: the server parses the caller's request with the wire id. */
class RequestMarshallerTest {

  static List<ScoreRequest> requests() {
    List<ScoreRequest> requests = new ArrayList<>();
    requests.add(ScoreRequest.getDefaultInstance());
    requests.add(ScoreRequest.newBuilder().setRequestId("only-id").build());
    requests.add(ScoreRequest.newBuilder().setRequestId("ünï-çødé ✓ 😀")
        .putContext("país", "España").addModels("ctr").addCandidates(Candidate.newBuilder()
            .setId("ad-é").putFeatures("ключ", "значение")).build());
    Random random = new Random(7);
    for (int r = 0; r < 20; r++) {
      ScoreRequest.Builder request = ScoreRequest.newBuilder().setRequestId("req-" + r);
      for (int i = random.nextInt(12); i > 0; i--) {
        request.putContext("ctx_" + i, "x".repeat(random.nextInt(300)));
      }
      for (int c = random.nextInt(40); c > 0; c--) {
        Candidate.Builder candidate = Candidate.newBuilder().setId("ad-" + c);
        for (int f = random.nextInt(30); f > 0; f--) {
          candidate.putFeatures("feature_" + f, Integer.toString(random.nextInt()));
        }
        request.addCandidates(candidate);
      }
      requests.add(request.build());
    }
    return requests;
  }

  @Test
  void theServerReadsTheRequestWithTheWireId() throws Exception {
    for (ScoreRequest request : requests()) {
      for (String wireId : new String[] {"1", "zz9", "ünï"}) {
        ScoreRequest expected = request.toBuilder().setRequestId(wireId).build();
        InputStream stream = RequestMarshaller.OUTBOUND.stream(
            new RequestMarshaller.Outbound(request, wireId));
        int length = stream.available();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        assertEquals(length, ((io.grpc.Drainable) stream).drainTo(out));
        assertEquals(length, out.size());
        assertEquals(expected, ScoreRequest.parseFrom(out.toByteArray()));
        // Read as a plain InputStream, the same bytes.
        assertEquals(expected, ScoreRequest.parseFrom(RequestMarshaller.OUTBOUND.stream(
            new RequestMarshaller.Outbound(request, wireId))));
      }
    }
  }
}
