package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The ctr alias moves (1 -> 2) during a load through the client (5 s, or until 2 s after the
 * promote command returned if that is later): 0 failed calls, and every response's versions
 * are those whose offline scores it carries.
 */
class AliasMoveTest {
  // Generous: on a loaded 2-core machine the promote command's own start-up competes with the
  // server for the CPU; what is tested is that the move itself fails no call.
  static final Duration BUDGET = Duration.ofMillis(500);
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
    // Other test classes expect ctr 1 in production.
    RealServer.run(models.home(), RealServer.control().toString(), "promote", "ctr", "1",
        "--force");
  }

  @Test
  void aliasMovedUnderLoadNoFailedCallAndVersionsMatchTheirScores() throws Exception {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    try (BidscoreClient client = BidscoreClient.newBuilder().target(server.target())
        .meterRegistry(registry).build()) {
      Runnable promote = () -> {
        try {
          RealServer.run(models.home(), RealServer.control().toString(), "promote", "ctr", "2",
              "--force");
        } catch (Exception e) {
          throw new IllegalStateException(e);
        }
      };
      Load.run(client, models.requests(), BUDGET, 100, Duration.ofSeconds(1), Duration.ZERO,
          null); // warm-up
      List<Load.Result> results = Load.run(client, models.requests(), BUDGET, 100,
          Duration.ofSeconds(5), Duration.ofMillis(200), promote, Duration.ofSeconds(2));
      List<Load.Result> failed = results.stream()
          .filter(r -> r.error() != null || r.scores().isFallback()).toList();
      failed.forEach(r -> System.out.printf("  call %d failed after %.1f ms: %s%n", r.index(),
          r.elapsedMillis(), r.error() != null ? r.error() : r.scores()));
      assertEquals(0, failed.size(), "failed calls");
      int[] byVersion = new int[3];
      for (Load.Result result : results) {
        assertNull(result.error(), () -> "call " + result.index() + " failed: " + result.error());
        assertFalse(result.scores().isFallback(),
            () -> "call " + result.index() + " fell back: " + result.scores());
        String version = result.scores().version("ctr");
        assertTrue(Set.of("1", "2").contains(version), "ctr version " + version);
        assertEquals("1", result.scores().version("cvr"));
        byVersion[Integer.parseInt(version)]++;
        assertScoresOf(result.index() % models.requests().size(), result.scores());
      }
      System.out.printf("%d calls: ctr v1 %d, v2 %d%n", results.size(), byVersion[1],
          byVersion[2]);
      assertTrue(byVersion[1] > 0, "no call saw ctr 1 before the move");
      assertTrue(byVersion[2] > 0, "no call saw ctr 2 after the move");
      // The move is seen once the server polls after the promote command finished.
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      String version = byVersion[2] > 0 ? "2" : "1";
      while (!version.equals("2") && System.nanoTime() < deadline) {
        Scores scores = client.score(models.requests().get(0), BUDGET).get(5, TimeUnit.SECONDS);
        assertFalse(scores.isFallback());
        assertScoresOf(0, scores);
        version = scores.version("ctr");
        Thread.sleep(100);
      }
      assertEquals("2", version);
    }
  }

  /** The scores are those the reported versions give offline. */
  private static void assertScoresOf(int request, Scores scores) {
    for (String model : new String[] {"ctr", "cvr"}) {
      String version = scores.version(model);
      for (int c = 0; c < RealServer.CANDIDATES; c++) {
        assertEquals(models.score(model, version, request, c),
            scores.score(c, scores.modelIndex(model)), 1e-6,
            model + "@" + version + " request " + request + " candidate " + c);
      }
    }
  }
}
