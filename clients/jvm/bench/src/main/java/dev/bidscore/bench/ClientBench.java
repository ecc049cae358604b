package dev.bidscore.bench;

import com.google.protobuf.util.JsonFormat;
import dev.bidscore.client.BidscoreClient;
import dev.bidscore.client.Scores;
import dev.bidscore.client.TransportKind;
import dev.bidscore.v1.ScoreRequest;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Closed-loop load through {@link BidscoreClient}, like ghz's: {@code concurrency} calls in
 * flight, each completion sending the next, requests round-robin from ghz's data file. Prints
 * one JSON line: auctions/s, and the client's CPU per call (this JVM's process CPU time over
 * the measured window, every thread included, divided by the calls completed in it).
 *
 * <p>Args: target transport(unary|stream) dataFile concurrency warmupSeconds seconds
 */
public final class ClientBench {
  private ClientBench() {}

  public static void main(String[] args) throws Exception {
    String target = args[0];
    TransportKind kind = TransportKind.valueOf(args[1].toUpperCase(java.util.Locale.ROOT));
    List<ScoreRequest> requests = read(Path.of(args[2]));
    int concurrency = Integer.parseInt(args[3]);
    double warmup = Double.parseDouble(args[4]);
    double seconds = Double.parseDouble(args[5]);
    Duration budget = Duration.ofMillis(Long.parseLong(System.getenv().getOrDefault("BENCH_BUDGET_MS", "1000")));

    com.sun.management.OperatingSystemMXBean os =
        (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    AtomicLong completed = new AtomicLong();
    AtomicLong fallbacks = new AtomicLong();
    AtomicLong next = new AtomicLong();
    long start = System.nanoTime();
    long measureFrom = start + (long) (warmup * 1e9);
    long end = measureFrom + (long) (seconds * 1e9);
    long[] window = new long[4]; // calls, fallbacks, cpu at measureFrom; set once
    CountDownLatch lanes = new CountDownLatch(concurrency);
    try (BidscoreClient client = BidscoreClient.newBuilder().target(target).transport(kind)
        .meterRegistry(new SimpleMeterRegistry()).build()) {
      // Connect before the clock starts.
      client.score(requests.get(0), Duration.ofSeconds(10)).join();
      start = System.nanoTime();
      measureFrom = start + (long) (warmup * 1e9);
      end = measureFrom + (long) (seconds * 1e9);
      Lane.setup(client, requests, budget, completed, fallbacks, next, end, lanes);
      for (int i = 0; i < concurrency; i++) {
        Lane.send();
      }
      long now;
      while ((now = System.nanoTime()) < measureFrom) {
        Thread.sleep(Math.max(1, (measureFrom - now) / 1_000_000));
      }
      long calls0 = completed.get();
      long fallbacks0 = fallbacks.get();
      long cpu0 = os.getProcessCpuTime();
      long t0 = System.nanoTime();
      while ((now = System.nanoTime()) < end) {
        Thread.sleep(Math.max(1, (end - now) / 1_000_000));
      }
      long calls = completed.get() - calls0;
      long cpu = os.getProcessCpuTime() - cpu0;
      long elapsed = System.nanoTime() - t0;
      long fell = fallbacks.get() - fallbacks0;
      lanes.await();
      if (System.getenv("BENCH_THREADS") != null) {
        java.lang.management.ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        for (java.lang.management.ThreadInfo info :
            threads.getThreadInfo(threads.getAllThreadIds())) {
          if (info != null) {
            System.err.printf("%-50s %8.1f ms cpu%n", info.getThreadName(),
                threads.getThreadCpuTime(info.getThreadId()) / 1e6);
          }
        }
      }
      System.out.printf(java.util.Locale.ROOT,
          "{\"transport\": \"%s\", \"concurrency\": %d, \"seconds\": %.2f, \"calls\": %d,"
              + " \"fallbacks\": %d, \"auctions_per_s\": %.1f, \"cpu_us_per_call\": %.2f}%n",
          args[1], concurrency, elapsed / 1e9, calls, fell, calls / (elapsed / 1e9),
          calls == 0 ? Double.NaN : cpu / 1e3 / calls);
    }
  }

  private static List<ScoreRequest> read(Path dataFile) throws Exception {
    // ghz's --data-file: a JSON array of ScoreRequest messages (proto3 JSON).
    com.google.protobuf.Value.Builder list = com.google.protobuf.Value.newBuilder();
    JsonFormat.parser().merge(Files.readString(dataFile), list);
    List<ScoreRequest> requests = new ArrayList<>();
    for (com.google.protobuf.Value value : list.getListValue().getValuesList()) {
      ScoreRequest.Builder request = ScoreRequest.newBuilder();
      JsonFormat.parser().merge(JsonFormat.printer().print(value), request);
      requests.add(request.build());
    }
    return requests;
  }

  /** Each completion sends the next call until the end (the future's thread does the send). */
  private static final class Lane {
    private static BidscoreClient client;
    private static List<ScoreRequest> requests;
    private static Duration budget;
    private static AtomicLong completed;
    private static AtomicLong fallbacks;
    private static AtomicLong next;
    private static long end;
    private static CountDownLatch lanes;

    static void setup(BidscoreClient c, List<ScoreRequest> r, Duration b, AtomicLong done,
        AtomicLong fell, AtomicLong n, long e, CountDownLatch l) {
      client = c;
      requests = r;
      budget = b;
      completed = done;
      fallbacks = fell;
      next = n;
      end = e;
      lanes = l;
    }

    static void send() {
      ScoreRequest request = requests.get((int) (next.getAndIncrement() % requests.size()));
      client.score(request, budget).whenComplete(Lane::done);
    }

    static void done(Scores scores, Throwable error) {
      completed.incrementAndGet();
      if (error != null || scores.isFallback()) {
        fallbacks.incrementAndGet();
      }
      if (System.nanoTime() < end) {
        send();
      } else {
        lanes.countDown();
      }
    }
  }
}
