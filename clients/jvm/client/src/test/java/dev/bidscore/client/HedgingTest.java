package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.bidscore.v1.Candidate;
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
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Hedging (off by default): with {@code hedgeAfter}, a call the slow target has not answered
 * goes to the other too, and the first answer wins. Test servers on 127.0.0.1: one answers
 * after 300 ms, the other at once.
 */
class HedgingTest {
  static ScheduledExecutorService sleeper;
  static Server slow;
  static Server fast;

  @BeforeAll
  static void start() throws Exception {
    java.util.logging.Logger.getLogger("io.grpc.netty.shaded.io.grpc.netty.NettyServerHandler")
        .setLevel(java.util.logging.Level.SEVERE);
    sleeper = Executors.newSingleThreadScheduledExecutor();
    slow = server(300, "slow");
    fast = server(0, "fast");
  }

  @AfterAll
  static void stop() throws Exception {
    slow.shutdownNow();
    fast.shutdownNow();
    sleeper.shutdownNow();
  }

  static Server server(long delayMillis, String version) throws Exception {
    return NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(new ScorerGrpc.ScorerImplBase() {
          @Override
          public void score(ScoreRequest request, StreamObserver<ScoreResponse> reply) {
            ScoreResponse response = ScoreResponse.newBuilder()
                .setRequestId(request.getRequestId())
                .addModels(ModelVersion.newBuilder().setName("ctr").setVersion(version))
                .addCandidates(CandidateScores.newBuilder().setId("a").addScores(0.5f))
                .build();
            sleeper.schedule(() -> {
              try {
                reply.onNext(response);
                reply.onCompleted();
              } catch (RuntimeException cancelled) {
                // the client gave up
              }
            }, delayMillis, TimeUnit.MILLISECONDS);
          }
        }).build().start();
  }

  @Test
  void hedgedCallsAreAnsweredByTheFastTargetWithinBudget() throws Exception {
    ScoreRequest request = ScoreRequest.newBuilder().setRequestId("r").addModels("ctr")
        .addCandidates(Candidate.newBuilder().setId("a")).build();
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    try (BidscoreClient client = BidscoreClient.newBuilder()
        .targets(List.of("127.0.0.1:" + slow.getPort(), "127.0.0.1:" + fast.getPort()))
        .hedgeAfter(Duration.ofMillis(20)).meterRegistry(registry).build()) {
      for (int i = 0; i < 2; i++) { // connect both channels first
        client.score(request, Duration.ofSeconds(5)).get(10, TimeUnit.SECONDS);
      }
      double before = registry.get("bidscore.client.hedges").counter().count();
      for (int i = 0; i < 20; i++) {
        Scores scores = client.score(request, Duration.ofMillis(200)).get(5, TimeUnit.SECONDS);
        assertFalse(scores.isFallback(), scores::toString);
        assertEquals("fast", scores.version("ctr"));
      }
      // Round-robin: about half the calls went to the slow target first and were hedged.
      double hedges = registry.get("bidscore.client.hedges").counter().count() - before;
      assertTrue(hedges >= 5 && hedges <= 15, hedges + " hedges");
    }
    try (BidscoreClient client = BidscoreClient.newBuilder()
        .target("127.0.0.1:" + slow.getPort()).target("127.0.0.1:" + fast.getPort())
        .meterRegistry(new SimpleMeterRegistry()).fallback(FallbackPolicy.defaults(
            java.util.Map.of("ctr", 0f))).build()) {
      for (int i = 0; i < 2; i++) { // connect both channels first
        client.score(request, Duration.ofSeconds(5)).get(10, TimeUnit.SECONDS);
      }
      int fallbacks = 0;
      for (int i = 0; i < 10; i++) {
        fallbacks += client.score(request, Duration.ofMillis(100)).get(5, TimeUnit.SECONDS)
            .isFallback() ? 1 : 0;
      }
      assertTrue(fallbacks >= 3, "without hedging, the slow target's calls fall back");
    }
  }
}
