package dev.bidscore.bench;

import com.google.protobuf.util.JsonFormat;
import dev.bidscore.client.BidscoreClient;
import dev.bidscore.client.Scores;
import dev.bidscore.client.TransportKind;
import dev.bidscore.v1.ScoreRequest;
import dev.bidscore.v1.ScoreResponse;
import dev.bidscore.v1.ScorerGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Closed-loop load through {@link BidscoreClient}, like ghz's: {@code concurrency} calls in
 * flight, each completion sending the next, requests round-robin from ghz's data file. Prints
 * one JSON line: auctions/s, and the CPU per call: this JVM's process CPU time (user + system,
 * every thread: the client's, gRPC's event loop, the JIT compilers, the garbage collector, the
 * bench's own), counted over the measured window only, divided by the calls completed in it.
 * The window starts after a warm-up under the same load: at least {@code warmupSeconds}, then
 * until the JIT compilers are nearly idle (what they still compile in the window is counted,
 * and reported as {@code jit_ms_in_window}).
 *
 * <p>Modes: {@code unary} and {@code stream} go through {@link BidscoreClient};
 * {@code bare-unary} and {@code bare-stream} are the floor, plain grpc-java on the same kind of
 * channel with none of the client's logic: the generated async stub's {@code score} with the
 * budget as its deadline, and {@code streamsPerChannel} (2) raw {@code ScoreStream} calls whose
 * every response sends the next request on the same stream.
 *
 * <p>With {@code BENCH_THREADS} set, the window's CPU is also broken down by thread (from
 * /proc/self/task, so the JVM's own threads are named too) on stderr.
 *
 * <p>Args: target mode(unary|stream|bare-unary|bare-stream) dataFile concurrency
 * warmupSeconds seconds
 */
public final class ClientBench {
  private ClientBench() {}

  /** Where the load goes: sends one request, calls {@code done} once with its outcome. */
  interface Driver extends AutoCloseable {
    void send(ScoreRequest request, Done done);

    @Override
    void close() throws Exception;
  }

  interface Done {
    /** {@code ok}: the server's scores (not a fallback, not an error). */
    void done(boolean ok);
  }

  public static void main(String[] args) throws Exception {
    String target = args[0];
    String mode = args[1].toLowerCase(java.util.Locale.ROOT);
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
    CountDownLatch lanes = new CountDownLatch(concurrency);
    try (Driver driver = driver(mode, target, budget)) {
      // Connect before the clock starts.
      CountDownLatch first = new CountDownLatch(1);
      driver.send(requests.get(0), ok -> first.countDown());
      if (!first.await(10, TimeUnit.SECONDS)) {
        throw new IllegalStateException("no answer to the first call in 10 s");
      }
      long start = System.nanoTime();
      Lane.setup(driver, requests, completed, fallbacks, next, Long.MAX_VALUE, lanes);
      for (int i = 0; i < concurrency; i++) {
        Lane.send();
      }
      // Warm-up: at least `warmup` seconds, then until the JIT compilers are (nearly) done:
      // their threads used less than 5% of a core in each of the last two 2-second periods
      // (on a busy 2-core machine C2 can take a minute to catch up), at most BENCH_WARMUP_MAX_S
      // seconds. Compiler CPU from /proc (it counts a compilation still running); where there
      // is no /proc, the JVM's total compilation time.
      java.lang.management.CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
      double warmupMax = Double.parseDouble(
          System.getenv().getOrDefault("BENCH_WARMUP_MAX_S", "120"));
      Thread.sleep((long) (warmup * 1000));
      long jitMs = compilerMillis(jit);
      int quietPeriods = 0;
      while (quietPeriods < 2 && (System.nanoTime() - start) / 1e9 < warmupMax) {
        Thread.sleep(2000);
        long nowMs = compilerMillis(jit);
        quietPeriods = nowMs - jitMs < 100 ? quietPeriods + 1 : 0;
        jitMs = nowMs;
      }
      double warmedUp = (System.nanoTime() - start) / 1e9;
      long measureFrom = System.nanoTime();
      long end = measureFrom + (long) (seconds * 1e9);
      Lane.end = end;
      long now;
      Map<String, Long> threads0 = threadTicks();
      long jit0 = compilerMillis(jit);
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
      long jitInWindow = compilerMillis(jit) - jit0;
      Map<String, Long> threads1 = threadTicks();
      lanes.await();
      if (System.getenv("BENCH_THREADS") != null) {
        long tick = 10_000_000L; // USER_HZ = 100 on Linux
        System.err.printf("%s: CPU in the measured window by thread (ms, %.1f s, %d calls)%n",
            mode, elapsed / 1e9, calls);
        for (Map.Entry<String, Long> entry : threads1.entrySet()) {
          long ticks = entry.getValue() - threads0.getOrDefault(entry.getKey(), 0L);
          if (ticks > 0) {
            System.err.printf("  %-40s %8.0f ms  %6.1f us/call%n", entry.getKey(),
                ticks * tick / 1e6, calls == 0 ? Double.NaN : ticks * tick / 1e3 / calls);
          }
        }
      }
      System.out.printf(java.util.Locale.ROOT,
          "{\"transport\": \"%s\", \"concurrency\": %d, \"seconds\": %.2f, \"calls\": %d,"
              + " \"fallbacks\": %d, \"auctions_per_s\": %.1f, \"cpu_us_per_call\": %.2f,"
              + " \"cpu_counts\": \"process CPU (user+sys, all threads incl. JIT and GC)"
              + " over the measured window, after the warm-up\", \"warmup_s\": %.1f,"
              + " \"jit_cpu_ms_in_window\": %d}%n",
          args[1], concurrency, elapsed / 1e9, calls, fell, calls / (elapsed / 1e9),
          calls == 0 ? Double.NaN : cpu / 1e3 / calls, warmedUp, jitInWindow);
    }
  }

  private static Driver driver(String mode, String target, Duration budget) {
    switch (mode) {
      case "unary":
      case "stream":
        return new ClientDriver(target, TransportKind.valueOf(mode.toUpperCase(
            java.util.Locale.ROOT)), budget);
      case "bare-unary":
        return new BareUnary(target, budget);
      case "bare-stream":
        return new BareStream(target, 2);
      default:
        throw new IllegalArgumentException("mode: unary, stream, bare-unary or bare-stream");
    }
  }

  /** CPU time of the JIT compiler threads so far, ms (or the JVM's compilation time). */
  private static long compilerMillis(java.lang.management.CompilationMXBean jit) {
    long ticks = 0;
    boolean found = false;
    for (Map.Entry<String, Long> entry : threadTicks().entrySet()) {
      if (entry.getKey().contains("CompilerThre")) {
        ticks += entry.getValue();
        found = true;
      }
    }
    return found ? ticks * 10 : jit.getTotalCompilationTime();
  }

  /** Per thread (named "name/tid"): user + system clock ticks so far, from /proc/self/task. */
  private static Map<String, Long> threadTicks() {
    Map<String, Long> ticks = new TreeMap<>();
    try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
      for (Path task : tasks) {
        try {
          String stat = Files.readString(task.resolve("stat"));
          int open = stat.indexOf('(');
          int close = stat.lastIndexOf(')');
          String name = stat.substring(open + 1, close);
          String[] fields = stat.substring(close + 2).split(" ");
          // fields[0] is the state (stat field 3): utime and stime are stat fields 14 and 15.
          // Numbered threads of one kind (GC Thread#0..n, C2 CompilerThread0..n) add up.
          String kind = name.replaceAll("[#]?[0-9]+$", "#n").replaceAll("-[0-9]+$", "-n");
          ticks.merge(kind + " user", Long.parseLong(fields[11]), Long::sum);
          ticks.merge(kind + " sys", Long.parseLong(fields[12]), Long::sum);
        } catch (IOException | RuntimeException gone) {
          // the thread ended
        }
      }
    } catch (IOException e) {
      // not Linux: no breakdown
    }
    return ticks;
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

  /** Through {@link BidscoreClient} (the future's completion thread sends the next call). */
  private static final class ClientDriver implements Driver {
    private final BidscoreClient client;
    private final Duration budget;

    ClientDriver(String target, TransportKind kind, Duration budget) {
      client = BidscoreClient.newBuilder().target(target).transport(kind)
          .meterRegistry(new SimpleMeterRegistry()).build();
      this.budget = budget;
    }

    @Override
    public void send(ScoreRequest request, Done done) {
      client.score(request, budget).whenComplete((Scores scores, Throwable error) ->
          done.done(error == null && !scores.isFallback()));
    }

    @Override
    public void close() {
      client.close();
    }
  }

  /** The floor for unary: grpc-java's async stub, the budget as each call's deadline. */
  private static final class BareUnary implements Driver {
    private final ManagedChannel channel;
    private final ScorerGrpc.ScorerStub stub;
    private final long budgetNanos;

    BareUnary(String target, Duration budget) {
      // The same channel settings as BidscoreClient's.
      channel = Grpc.newChannelBuilder(target, InsecureChannelCredentials.create())
          .directExecutor().disableRetry().build();
      stub = ScorerGrpc.newStub(channel);
      budgetNanos = budget.toNanos();
    }

    @Override
    public void send(ScoreRequest request, Done done) {
      stub.withDeadlineAfter(budgetNanos, TimeUnit.NANOSECONDS).score(request,
          new StreamObserver<>() {
            @Override
            public void onNext(ScoreResponse response) {}

            @Override
            public void onError(Throwable t) {
              done.done(false);
            }

            @Override
            public void onCompleted() {
              done.done(true);
            }
          });
    }

    @Override
    public void close() throws InterruptedException {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /**
   * The floor for the stream: {@code streams} raw ScoreStream calls, requests sent as they are
   * (no id rewriting, no matching, no deadline), each response's arrival sending the next
   * request on its stream; requests spread round-robin over the streams.
   */
  private static final class BareStream implements Driver {
    private final ManagedChannel channel;
    private final List<Lane1> streams = new ArrayList<>();
    private final AtomicLong next = new AtomicLong();

    /** One stream: its observer, and the callbacks of its requests in flight, FIFO. */
    private static final class Lane1 implements ClientResponseObserver<ScoreRequest, ScoreResponse> {
      final java.util.concurrent.ConcurrentLinkedQueue<Done> waiting =
          new java.util.concurrent.ConcurrentLinkedQueue<>();
      ClientCallStreamObserver<ScoreRequest> requests;

      @Override
      public void beforeStart(ClientCallStreamObserver<ScoreRequest> stream) {
        requests = stream;
      }

      @Override
      public void onNext(ScoreResponse response) {
        // The closed loop only needs "one answer came back": responses may come out of order,
        // but every response completes one lane's call.
        Done done = waiting.poll();
        if (done != null) {
          done.done(!response.hasError());
        }
      }

      @Override
      public void onError(Throwable t) {
        Done done;
        while ((done = waiting.poll()) != null) {
          done.done(false);
        }
      }

      @Override
      public void onCompleted() {
        onError(null);
      }

      synchronized void send(ScoreRequest request, Done done) {
        waiting.add(done);
        requests.onNext(request);
      }
    }

    BareStream(String target, int streams) {
      channel = Grpc.newChannelBuilder(target, InsecureChannelCredentials.create())
          .directExecutor().disableRetry().build();
      ScorerGrpc.ScorerStub stub = ScorerGrpc.newStub(channel);
      for (int i = 0; i < streams; i++) {
        Lane1 lane = new Lane1();
        stub.scoreStream(lane);
        this.streams.add(lane);
      }
    }

    @Override
    public void send(ScoreRequest request, Done done) {
      streams.get((int) (next.getAndIncrement() % streams.size())).send(request, done);
    }

    @Override
    public void close() throws InterruptedException {
      for (Lane1 lane : streams) {
        synchronized (lane) {
          lane.requests.onCompleted();
        }
      }
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** Each completion sends the next call until the end (the completion's thread does the send). */
  private static final class Lane {
    private static Driver driver;
    private static List<ScoreRequest> requests;
    private static AtomicLong completed;
    private static AtomicLong fallbacks;
    private static AtomicLong next;
    private static volatile long end;
    private static CountDownLatch lanes;
    private static final Done DONE = Lane::done;

    static void setup(Driver d, List<ScoreRequest> r, AtomicLong done, AtomicLong fell,
        AtomicLong n, long e, CountDownLatch l) {
      driver = d;
      requests = r;
      completed = done;
      fallbacks = fell;
      next = n;
      end = e;
      lanes = l;
    }

    static void send() {
      ScoreRequest request = requests.get((int) (next.getAndIncrement() % requests.size()));
      driver.send(request, DONE);
    }

    static void done(boolean ok) {
      completed.incrementAndGet();
      if (!ok) {
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
