package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Two targets, one killed (SIGKILL) mid-run: traffic continues on the other, no call fails. */
class FailoverTest {
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
  void oneOfTwoTargetsKilledMidRunNoFailedCall() throws Exception {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    try (BidscoreClient client = BidscoreClient.newBuilder()
        .targets(List.of(first.target(), second.target()))
        .meterRegistry(registry).build()) {
      long[] killedAt = new long[1];
      Runnable kill = () -> {
        try {
          killedAt[0] = System.nanoTime();
          first.kill();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      };
      List<Load.Result> results = Load.run(client, models.requests(), BUDGET, 150,
          Duration.ofSeconds(4), Duration.ofMillis(1500), kill);
      assertFalse(first.process.isAlive());
      int afterKill = 0;
      for (Load.Result result : results) {
        assertNull(result.error(), () -> "call " + result.index() + " failed: " + result.error());
        assertFalse(result.scores().isFallback(),
            () -> "call " + result.index() + " fell back: " + result.scores());
        afterKill += result.startNanos() > killedAt[0] ? 1 : 0;
      }
      ServerStoppedTest.assertWithinBudget(results, BUDGET, 2.0);
      System.out.printf("%d calls, %d after the kill, %.0f retried%n", results.size(), afterKill,
          registry.get("bidscore.client.retries").counter().count());
      assertTrue(afterKill > 100, "traffic after the kill: " + afterKill);
      assertEquals(1, client.servingTargets());
    }
  }
}
