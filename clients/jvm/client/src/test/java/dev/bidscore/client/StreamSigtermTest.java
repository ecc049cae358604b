package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Stream transport against real servers with ScoreStream: one of two is stopped with SIGTERM
 * mid-run (it drains: answers what it read, ends its streams with UNAVAILABLE); what its
 * streams had not answered is resent on another stream, within the budget. Skipped while the
 * server has no ScoreStream RPC.
 */
class StreamSigtermTest {
  static final Duration BUDGET = Duration.ofMillis(250);
  static RealServer.Models models;
  static RealServer first;
  static RealServer second;

  @BeforeAll
  static void start() throws Exception {
    models = RealServer.models();
    first = RealServer.launch(models.home());
    second = RealServer.launch(models.home());
    first.waitServing(90);
    second.waitServing(90);
  }

  @AfterAll
  static void stop() throws Exception {
    for (RealServer server : new RealServer[] {first, second}) {
      if (server != null) {
        server.close();
      }
    }
  }

  @Test
  void streamBrokenBySigtermIsResentWithinBudget() throws Exception {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    try (BidscoreClient client = BidscoreClient.newBuilder()
        .targets(List.of(first.target(), second.target())).transport(TransportKind.STREAM)
        .meterRegistry(registry).build()) {
      Runnable sigterm = () -> {
        try {
          first.stop();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      };
      List<Load.Result> results = Load.run(client, models.requests(), BUDGET, 150,
          Duration.ofSeconds(4), Duration.ofMillis(1500), sigterm);
      for (Load.Result result : results) {
        assertNull(result.error(), () -> "call " + result.index() + " failed: " + result.error());
        assertFalse(result.scores().isFallback(),
            () -> "call " + result.index() + " fell back: " + result.scores());
      }
      ServerStoppedTest.assertWithinBudget(results, BUDGET, 2.0);
      System.out.printf("%d calls over ScoreStream, %.0f resent after a broken stream,"
              + " %.0f retried%n", results.size(),
          registry.get("bidscore.client.stream.resends").counter().count(),
          registry.get("bidscore.client.retries").counter().count());
      assertTrue(!first.process.isAlive());
    }
  }
}
