package dev.bidscore.client;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;

import dev.bidscore.v1.ScoreRequest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/** Open-loop load through the client: calls at a fixed rate, each one's outcome and timing. */
final class Load {
  /** One call: when it was made, how long until its future completed, and with what. */
  record Result(int index, long startNanos, long elapsedNanos, Scores scores, Throwable error) {
    double elapsedMillis() {
      return elapsedNanos / 1e6;
    }
  }

  private Load() {}

  /**
   * Calls {@code client.score} {@code perSecond} times a second for {@code duration}, request i
   * being {@code requests.get(i % size)}; returns once every future has completed (each call
   * asserted not to throw on this thread). {@code during} runs on another thread at
   * {@code at} after the start.
   */
  static List<Result> run(BidscoreClient client, List<ScoreRequest> requests, Duration budget,
      int perSecond, Duration duration, Duration at, Runnable during) throws Exception {
    return run(client, requests, budget, perSecond, duration, at, during, Duration.ZERO);
  }

  /**
   * As above, and the load goes on until {@code after} past the end of {@code during} if that
   * is later than {@code duration} (at most a minute).
   */
  static List<Result> run(BidscoreClient client, List<ScoreRequest> requests, Duration budget,
      int perSecond, Duration duration, Duration at, Runnable during, Duration after)
      throws Exception {
    ConcurrentLinkedQueue<Result> results = new ConcurrentLinkedQueue<>();
    List<CompletableFuture<?>> futures = new ArrayList<>();
    long interval = TimeUnit.SECONDS.toNanos(1) / perSecond;
    long begin = System.nanoTime();
    java.util.concurrent.atomic.AtomicLong endAt =
        new java.util.concurrent.atomic.AtomicLong(begin + duration.toNanos());
    long hardEnd = begin + TimeUnit.MINUTES.toNanos(1);
    java.util.concurrent.atomic.AtomicBoolean sideDone =
        new java.util.concurrent.atomic.AtomicBoolean(during == null);
    Thread side = null;
    if (during != null) {
      side = new Thread(() -> {
        LockSupport.parkNanos(at.toNanos());
        during.run();
        endAt.accumulateAndGet(System.nanoTime() + after.toNanos(), Math::max);
        sideDone.set(true);
      }, "load-side-action");
      side.start();
    }
    int i = 0;
    for (long next = begin; next < hardEnd && (next < endAt.get() || !sideDone.get());
        next += interval, i++) {
      long wait = next - System.nanoTime();
      if (wait > 0) {
        LockSupport.parkNanos(wait);
      }
      int index = i;
      ScoreRequest request = requests.get(i % requests.size());
      long start = System.nanoTime();
      CompletableFuture<Scores> future =
          assertDoesNotThrow(() -> client.score(request, budget), "score() threw");
      futures.add(future.whenComplete((scores, error) -> results.add(
          new Result(index, start, System.nanoTime() - start, scores, error))));
    }
    CompletableFuture.allOf(futures.toArray(CompletableFuture[]::new))
        .handle((x, y) -> null).get(30, TimeUnit.SECONDS);
    if (side != null) {
      side.join(60_000);
    }
    List<Result> sorted = new ArrayList<>(results);
    sorted.sort((a, b) -> Integer.compare(a.index(), b.index()));
    return sorted;
  }

  /** The q-quantile (0..1) of the results' elapsed milliseconds. */
  static double quantileMillis(List<Result> results, double q) {
    double[] values = results.stream().mapToDouble(Result::elapsedMillis).sorted().toArray();
    if (values.length == 0) {
      return Double.NaN;
    }
    return values[Math.min(values.length - 1, (int) Math.ceil(q * values.length) - 1)];
  }
}
