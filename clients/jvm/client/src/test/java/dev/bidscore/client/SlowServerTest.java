package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.bidscore.v1.CandidateScores;
import dev.bidscore.v1.ModelVersion;
import dev.bidscore.v1.ScoreRequest;
import dev.bidscore.v1.ScoreResponse;
import dev.bidscore.v1.ScorerGrpc;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A slow server (a test server on 127.0.0.1 that answers every Score after 100 ms): calls
 * complete at their budget with the fallback, and what comes back afterwards is dropped and
 * counted.
 */
class SlowServerTest {
  static final Duration DELAY = Duration.ofMillis(100);
  static final Duration BUDGET = Duration.ofMillis(15);
  static ScheduledExecutorService sleeper;
  static Server server;
  static final AtomicInteger received = new AtomicInteger();

  @BeforeAll
  static void start() throws Exception {
    // The fake server's complaints about calls the client cancelled at their deadline.
    java.util.logging.Logger.getLogger("io.grpc.netty.shaded.io.grpc.netty.NettyServerHandler")
        .setLevel(java.util.logging.Level.SEVERE);
    sleeper = Executors.newSingleThreadScheduledExecutor();
    server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(new ScorerGrpc.ScorerImplBase() {
          @Override
          public void score(ScoreRequest request, StreamObserver<ScoreResponse> reply) {
            received.incrementAndGet();
            ScoreResponse.Builder response = ScoreResponse.newBuilder()
                .setRequestId(request.getRequestId())
                .addModels(ModelVersion.newBuilder().setName("ctr").setVersion("9"));
            request.getCandidatesList().forEach(c -> response.addCandidates(
                CandidateScores.newBuilder().setId(c.getId()).addScores(0.5f)));
            sleeper.schedule(() -> {
              try {
                reply.onNext(response.build());
                reply.onCompleted();
              } catch (RuntimeException cancelled) {
                // the client gave up at its deadline
              }
            }, DELAY.toMillis(), TimeUnit.MILLISECONDS);
          }
        })
        .build()
        .start();
  }

  @AfterAll
  static void stop() throws Exception {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    sleeper.shutdownNow();
  }

  @Test
  void callsCompleteAtTheirBudgetWithFallbackAndLateResponsesAreCounted() throws Exception {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    List<ScoreRequest> requests = List.of(ScoreRequest.newBuilder().setRequestId("slow")
        .addModels("ctr").addCandidates(dev.bidscore.v1.Candidate.newBuilder().setId("a"))
        .build());
    try (BidscoreClient client = BidscoreClient.newBuilder()
        .target("127.0.0.1:" + server.getPort())
        .fallback(FallbackPolicy.defaults(Map.of("ctr", 0.001f)))
        .meterRegistry(registry).build()) {
      // Connect first: the first call's budget should not be spent on the TCP handshake.
      client.score(requests.get(0), Duration.ofSeconds(1)).get(5, TimeUnit.SECONDS);
      Load.run(client, requests, BUDGET, 100, Duration.ofSeconds(1), Duration.ZERO, null);
      List<Load.Result> results = Load.run(client, requests, BUDGET, 100,
          Duration.ofSeconds(2), Duration.ZERO, null);
      for (Load.Result result : results) {
        assertNull(result.error());
        assertTrue(result.scores().isFallback());
        assertEquals(FallbackReason.DEADLINE, result.scores().fallbackReason());
        assertEquals(0.001f, result.scores().score("a", "ctr"));
        // At the budget, not before it.
        assertTrue(result.elapsedMillis() >= BUDGET.toMillis() - 0.1, () -> "early: " + result);
      }
      ServerStoppedTest.assertWithinBudget(results, BUDGET, 2.0);
      // Each call's late outcome (warm-up included) was dropped and counted.
      double fellBack = registry.get("bidscore.client.calls").tag("outcome", "fallback")
          .tag("reason", "deadline").counter().count();
      assertTrue(fellBack >= results.size());
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (registry.get("bidscore.client.late.responses").counter().count() < fellBack
          && System.nanoTime() < deadline) {
        Thread.sleep(10);
      }
      double late = registry.get("bidscore.client.late.responses").counter().count();
      // A call whose caller thread stalls past its whole budget before sending falls back
      // without an attempt (nothing to be late): allow a few on a loaded machine.
      assertTrue(late <= fellBack && late >= fellBack * 0.95, late + " late of " + fellBack);
      System.out.printf("%.0f deadline fallbacks, %.0f late attempts counted, %d calls reached"
          + " the slow server%n", fellBack, late, received.get());
      assertTrue(received.get() > 0);
    }
  }
}
