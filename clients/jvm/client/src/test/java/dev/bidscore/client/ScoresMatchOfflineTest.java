package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.bidscore.v1.ScoreRequest;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Scores through the client equal the Python offline path's (features.tokenize + predict). */
class ScoresMatchOfflineTest {
  static RealServer.Models models;
  static RealServer server;

  @BeforeAll
  static void start() throws Exception {
    models = RealServer.models();
    server = RealServer.start(models.home());
  }

  @AfterAll
  static void stop() throws Exception {
    if (server != null) {
      server.close();
    }
  }

  @Test
  void unaryScoresEqualOfflineScores() throws Exception {
    assertScoresEqualOffline(TransportKind.UNARY);
  }

  @Test
  void streamScoresEqualOfflineScores() throws Exception {
    assertScoresEqualOffline(TransportKind.STREAM);
  }

  private void assertScoresEqualOffline(TransportKind kind) throws Exception {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    try (BidscoreClient client = BidscoreClient.newBuilder().target(server.target())
        .transport(kind).meterRegistry(registry).build()) {
      for (int r = 0; r < models.requests().size(); r++) {
        ScoreRequest request = models.requests().get(r);
        Scores scores = client.score(request, Duration.ofSeconds(5)).get(10, TimeUnit.SECONDS);
        assertFalse(scores.isFallback(), () -> "fallback: " + scores);
        assertEquals(request.getRequestId(), scores.requestId());
        assertEquals("1", scores.version("ctr"));
        assertEquals("1", scores.version("cvr"));
        assertEquals(RealServer.CANDIDATES, scores.candidateCount());
        for (int c = 0; c < RealServer.CANDIDATES; c++) {
          assertEquals(request.getCandidates(c).getId(),
              scores.response().getCandidates(c).getId());
          for (String model : new String[] {"ctr", "cvr"}) {
            assertEquals(models.score(model, "1", r, c),
                scores.score(c, scores.modelIndex(model)), 1e-6,
                "request " + r + " candidate " + c + " " + model);
          }
        }
      }
      assertEquals(models.requests().size(), registry.get("bidscore.client.calls")
          .tag("outcome", "scored").counter().count());
    }
  }
}
