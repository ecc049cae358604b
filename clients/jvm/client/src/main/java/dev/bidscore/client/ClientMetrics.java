package dev.bidscore.client;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.EnumMap;
import java.util.Map;

/**
 * The client's meters, registered once in the bidder's {@link MeterRegistry} (names in
 * docs/clients.md). Every meter is looked up at construction, none on the hot path.
 */
final class ClientMetrics {
  final Counter scored;
  final Map<FallbackReason, Counter> fallbacks = new EnumMap<>(FallbackReason.class);
  final Map<FallbackReason, Counter> failures = new EnumMap<>(FallbackReason.class);
  final Timer latencyScored;
  final Timer latencyFallback;
  final Counter late;
  final Counter retries;
  final Counter hedges;
  final Counter streamReopens;
  final Counter streamResends;

  ClientMetrics(MeterRegistry registry, String transport) {
    scored = calls(registry, transport, "scored", "none");
    for (FallbackReason reason : FallbackReason.values()) {
      fallbacks.put(reason, calls(registry, transport, "fallback", reason.tag));
      failures.put(reason, calls(registry, transport, "failed", reason.tag));
    }
    latencyScored = latency(registry, transport, "scored");
    latencyFallback = latency(registry, transport, "fallback");
    late = counter(registry, "bidscore.client.late.responses", transport,
        "Attempts that had not answered by the budget, dropped: outcomes arriving after their"
            + " call fell back, and RPCs cut by their gRPC deadline (the budget)");
    retries = counter(registry, "bidscore.client.retries", transport,
        "Attempts resent to another target after UNAVAILABLE, within the budget");
    hedges = counter(registry, "bidscore.client.hedges", transport,
        "Hedged second attempts (hedging is off unless hedgeAfter is set)");
    streamReopens = counter(registry, "bidscore.client.stream.reopens", transport,
        "ScoreStream streams reopened after they broke");
    streamResends = counter(registry, "bidscore.client.stream.resends", transport,
        "Requests resent on another stream after theirs broke");
  }

  private static Counter calls(MeterRegistry registry, String transport, String outcome,
      String reason) {
    return Counter.builder("bidscore.client.calls")
        .description("Completed score() calls by outcome (scored, fallback, failed) and reason")
        .tag("transport", transport)
        .tag("outcome", outcome)
        .tag("reason", reason)
        .register(registry);
  }

  private static Counter counter(MeterRegistry registry, String name, String transport,
      String description) {
    return Counter.builder(name).description(description).tag("transport", transport)
        .register(registry);
  }

  private static Timer latency(MeterRegistry registry, String transport, String outcome) {
    return Timer.builder("bidscore.client.latency")
        .description("score() from the call to its future's completion")
        .tag("transport", transport)
        .tag("outcome", outcome)
        .publishPercentileHistogram()
        .minimumExpectedValue(Duration.ofMillis(1))
        .maximumExpectedValue(Duration.ofSeconds(1))
        .register(registry);
  }

  void completed(FallbackReason reason, boolean failed, long nanos) {
    if (reason == null) {
      scored.increment();
      latencyScored.record(nanos, java.util.concurrent.TimeUnit.NANOSECONDS);
      return;
    }
    (failed ? failures : fallbacks).get(reason).increment();
    latencyFallback.record(nanos, java.util.concurrent.TimeUnit.NANOSECONDS);
  }
}
