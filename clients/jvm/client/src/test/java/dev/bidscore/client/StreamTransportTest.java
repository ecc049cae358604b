package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.bidscore.v1.ScoreRequest;
import dev.bidscore.v1.ScoreResponse;
import dev.bidscore.v1.ScorerGrpc;
import io.grpc.CallOptions;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The stream transport's logic, before the server has ScoreStream: a test server on 127.0.0.1
 * that speaks ScoreStream and answers each message with the real `control serve`'s unary Score
 * for it. (ScoresMatchOfflineTest and these run against the real ScoreStream once it exists.)
 */
class StreamTransportTest {
  static RealServer.Models models;
  static RealServer server;
  static ManagedChannel upstream;
  static StreamProxy first;
  static StreamProxy second;

  @BeforeAll
  static void start() throws Exception {
    models = RealServer.models();
    server = RealServer.start(models.home());
    upstream = Grpc.newChannelBuilder(server.target(), InsecureChannelCredentials.create())
        .build();
    first = new StreamProxy(upstream);
    second = new StreamProxy(upstream);
  }

  @AfterAll
  static void stop() throws Exception {
    for (StreamProxy proxy : new StreamProxy[] {first, second}) {
      if (proxy != null) {
        proxy.server.shutdownNow();
      }
    }
    if (upstream != null) {
      upstream.shutdownNow();
    }
    if (server != null) {
      server.close();
    }
  }

  @Test
  void streamScoresEqualUnaryScoresAndOffline() throws Exception {
    try (BidscoreClient stream = BidscoreClient.newBuilder().target(first.target())
            .transport(TransportKind.STREAM).meterRegistry(new SimpleMeterRegistry()).build();
        BidscoreClient unary = BidscoreClient.newBuilder().target(server.target())
            .meterRegistry(new SimpleMeterRegistry()).build()) {
      // Many in flight at once on the few streams: responses matched by request_id.
      List<CompletableFuture<Scores>> streamed = new ArrayList<>();
      for (int round = 0; round < 3; round++) {
        for (ScoreRequest request : models.requests()) {
          streamed.add(stream.score(request, Duration.ofSeconds(5)));
        }
      }
      for (int i = 0; i < streamed.size(); i++) {
        int r = i % models.requests().size();
        ScoreRequest request = models.requests().get(r);
        Scores got = streamed.get(i).get(10, TimeUnit.SECONDS);
        Scores want = unary.score(request, Duration.ofSeconds(5)).get(10, TimeUnit.SECONDS);
        assertFalse(got.isFallback(), got::toString);
        assertEquals(request.getRequestId(), got.requestId());
        assertEquals(want.response(), got.response());
        for (int c = 0; c < RealServer.CANDIDATES; c++) {
          assertEquals(models.score("ctr", "1", r, c), got.score(c, got.modelIndex("ctr")), 1e-6);
        }
      }
    }
  }

  @Test
  void requestsOfABrokenStreamAreResentOnAnotherWithinTheirBudget() throws Exception {
    SimpleMeterRegistry registry = new SimpleMeterRegistry();
    Duration budget = Duration.ofMillis(1000);
    try (BidscoreClient client = BidscoreClient.newBuilder()
        .targets(List.of(first.target(), second.target())).transport(TransportKind.STREAM)
        .meterRegistry(registry).build()) {
      client.score(models.requests().get(0), Duration.ofSeconds(5)).get(10, TimeUnit.SECONDS);
      client.score(models.requests().get(1), Duration.ofSeconds(5)).get(10, TimeUnit.SECONDS);
      first.hold = true; // reads requests, answers none (a server about to drain)
      List<CompletableFuture<Scores>> futures = new ArrayList<>();
      for (ScoreRequest request : models.requests()) {
        futures.add(client.score(request, budget));
      }
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (first.held.isEmpty() && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      Thread.sleep(50);
      int held = first.held.size();
      assertTrue(held > 0, "no request went to the first server");
      first.hold = false;
      first.breakStreams(); // ends every stream with UNAVAILABLE, answering nothing held
      for (int r = 0; r < futures.size(); r++) {
        Scores scores = futures.get(r).get(10, TimeUnit.SECONDS);
        assertFalse(scores.isFallback(), "request " + r + ": " + scores);
        assertTrue(scores.elapsedNanos() <= budget.toNanos(), "past its budget: " + scores);
        assertEquals(models.score("ctr", "1", r, 0), scores.score(0, scores.modelIndex("ctr")),
            1e-6);
      }
      assertEquals(held, registry.get("bidscore.client.stream.resends").counter().count());
      assertTrue(registry.get("bidscore.client.retries").counter().count() >= held);
      System.out.printf("%d requests held by a broken stream, all resent and scored%n", held);
    }
  }

  /** A ScoreStream server on 127.0.0.1 answering through the real server's unary Score. */
  static final class StreamProxy {
    final Server server;
    final ManagedChannel upstream;
    final Set<StreamObserver<ScoreResponse>> open = ConcurrentHashMap.newKeySet();
    final Set<ScoreRequest> held = ConcurrentHashMap.newKeySet();
    volatile boolean hold;

    StreamProxy(ManagedChannel upstream) throws Exception {
      this.upstream = upstream;
      ServerServiceDefinition service = ServerServiceDefinition.builder("bidscore.v1.Scorer")
          .addMethod(StreamTransport.SCORE_STREAM, ServerCalls.asyncBidiStreamingCall(this::open))
          .build();
      server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
          .addService(service).build().start();
    }

    String target() {
      return "127.0.0.1:" + server.getPort();
    }

    private StreamObserver<ScoreRequest> open(StreamObserver<ScoreResponse> out) {
      open.add(out);
      return new StreamObserver<>() {
        @Override
        public void onNext(ScoreRequest request) {
          if (hold) {
            held.add(request);
            return;
          }
          ClientCalls.asyncUnaryCall(upstream.newCall(ScorerGrpc.getScoreMethod(),
              CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS)), request,
              new StreamObserver<>() {
                @Override
                public void onNext(ScoreResponse response) {
                  synchronized (out) {
                    try {
                      out.onNext(response);
                    } catch (RuntimeException closed) {
                      // the stream was broken meanwhile
                    }
                  }
                }

                @Override
                public void onError(Throwable error) {}

                @Override
                public void onCompleted() {}
              });
        }

        @Override
        public void onError(Throwable error) {
          open.remove(out);
        }

        @Override
        public void onCompleted() {
          open.remove(out);
          synchronized (out) {
            out.onCompleted();
          }
        }
      };
    }

    void breakStreams() {
      for (StreamObserver<ScoreResponse> out : List.copyOf(open)) {
        open.remove(out);
        synchronized (out) {
          try {
            out.onError(Status.UNAVAILABLE.withDescription("draining").asRuntimeException());
          } catch (RuntimeException closed) {
            // already gone
          }
        }
      }
    }
  }
}
