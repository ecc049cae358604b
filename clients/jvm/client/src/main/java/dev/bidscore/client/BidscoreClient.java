package dev.bidscore.client;

import dev.bidscore.v1.ScoreRequest;
import dev.bidscore.v1.ScoreResponse;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Metrics;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A bidder's client of {@code bidscore.v1.Scorer}: {@link #score} completes within its budget,
 * always, with the server's scores or with the {@link FallbackPolicy}'s.
 *
 * <p>One channel per target; calls go round-robin over the targets whose gRPC health says
 * SERVING (or that have not said otherwise); an attempt that gets UNAVAILABLE is resent to
 * another target while the budget lasts (at most {@code maxAttempts} attempts); nothing else is
 * retried. A timer completes the call with the fallback when the budget runs out, and whatever
 * arrives after that is dropped and counted ({@code bidscore.client.late.responses}).
 *
 * <p>Thread-safe; {@link #score} never blocks and never throws. The returned future is completed
 * on a gRPC or timer thread: keep continuations short, or move them with {@code *Async(...,
 * executor)}. {@link #close()} completes every call still in flight (with the fallback).
 */
public final class BidscoreClient implements AutoCloseable {
  private final Target[] targets;
  private final FallbackPolicy fallback;
  private final ClientMetrics metrics;
  private final int maxAttempts;
  private final long hedgeAfterNanos;
  private final ScheduledThreadPoolExecutor timer;
  /** No budget timer of our own: every attempt ends by its gRPC deadline (unary, no hedging). */
  private final boolean deadlineByTransport;
  private final AtomicInteger next = new AtomicInteger();
  private final MeterRegistry registry;
  private final List<io.micrometer.core.instrument.Meter> gauges = new ArrayList<>();
  private volatile boolean closed;

  private BidscoreClient(Builder builder) {
    if (builder.targets.isEmpty()) {
      throw new IllegalArgumentException("at least one target (host:port) is required");
    }
    if (builder.targets.size() > 64) {
      throw new IllegalArgumentException("at most 64 targets");
    }
    fallback = Objects.requireNonNull(builder.fallback, "fallback");
    maxAttempts = builder.maxAttempts;
    hedgeAfterNanos = builder.hedgeAfter == null ? -1 : builder.hedgeAfter.toNanos();
    registry = builder.registry;
    String kind = builder.transport.name().toLowerCase(java.util.Locale.ROOT);
    metrics = new ClientMetrics(registry, kind);
    timer = new ScheduledThreadPoolExecutor(1, runnable -> {
      Thread thread = new Thread(runnable, "bidscore-client-timer");
      thread.setDaemon(true);
      return thread;
    });
    timer.setRemoveOnCancelPolicy(true);
    targets = new Target[builder.targets.size()];
    for (int i = 0; i < targets.length; i++) {
      String address = builder.targets.get(i);
      ManagedChannelBuilder<?> channelBuilder =
          Grpc.newChannelBuilder(address, InsecureChannelCredentials.create())
              .directExecutor() // our callbacks never block; no thread hop per call
              .disableRetry(); // retries are ours, within the budget
      ManagedChannel channel = channelBuilder.build();
      Transport transport = builder.transport == TransportKind.STREAM
          ? new StreamTransport(channel, builder.streamsPerChannel, timer, metrics)
          : new UnaryTransport(channel);
      targets[i] = new Target(address, i, channel, transport, builder.healthService, timer);
    }
    deadlineByTransport = hedgeAfterNanos < 0 && targets[0].transport.answersByDeadline();
    gauges.add(Gauge.builder("bidscore.client.targets.serving", this, BidscoreClient::eligible)
        .description("Targets calls may go to (health SERVING or not yet known)")
        .tag("transport", kind)
        .register(registry));
    for (Target target : targets) {
      target.channel.getState(true); // connect now, not on the first call
      target.startHealthWatch();
    }
  }

  public static Builder newBuilder() {
    return new Builder();
  }

  /**
   * Scores one auction. The future completes within {@code budget} (measured from this call)
   * with the server's scores, or with the fallback ({@link Scores#isFallback()}), or, under
   * {@link FallbackPolicy#fail()}, exceptionally with a {@link ScoringException}.
   */
  public CompletableFuture<Scores> score(ScoreRequest request, Duration budget) {
    long start = System.nanoTime();
    Call call = new Call(request, start);
    try {
      long budgetNanos = budget.toNanos();
      call.deadline = start + budgetNanos;
      if (closed) {
        call.finish(null, FallbackReason.CLOSED, null);
      } else if (budgetNanos <= 0) {
        call.finish(null, FallbackReason.DEADLINE, null);
      } else {
        call.begin(budgetNanos);
      }
    } catch (RuntimeException | Error e) {
      // Nothing reaches the caller's thread: a bad request (null) or a closing client.
      if (request == null || budget == null) {
        call.future.completeExceptionally(e);
      } else {
        call.finish(null, closed ? FallbackReason.CLOSED : FallbackReason.ERROR,
            Status.INTERNAL.withCause(e));
      }
    }
    return call.future;
  }

  /**
   * For start-up only (it blocks): waits until some target's health says SERVING (or, with
   * health checks off, its channel is connected), at most {@code timeout}. True if one does.
   * Calls made before that work too, but their budget also pays for connecting.
   */
  public boolean awaitServing(Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    do {
      for (Target target : targets) {
        Target.Health health = target.health();
        if (health == Target.Health.SERVING || (health == Target.Health.UNCHECKED
            && target.channel.getState(true) == io.grpc.ConnectivityState.READY)) {
          return true;
        }
      }
      Thread.sleep(5);
    } while (System.nanoTime() < deadline);
    return false;
  }

  /** How many targets calls may go to now. */
  public int servingTargets() {
    return (int) eligible();
  }

  private double eligible() {
    int count = 0;
    for (Target target : targets) {
      count += target.eligible() ? 1 : 0;
    }
    return count;
  }

  /**
   * The first eligible target not yet tried, from {@code start} on (round-robin: a call's first
   * attempt starts at the next position; its retries and hedges continue from its own, so they
   * do not skew the rotation).
   */
  private Target pick(long tried, int start) {
    int n = targets.length;
    Target untriedDown = null;
    for (int i = 0; i < n; i++) {
      int index = start + i < n ? start + i : start + i - n;
      if ((tried & (1L << index)) != 0) {
        continue;
      }
      Target target = targets[index];
      if (target.eligible()) {
        return target;
      }
      if (untriedDown == null) {
        untriedDown = target;
      }
    }
    // Every target is down or tried: try one anyway (it fails fast if it is really gone).
    return untriedDown != null ? untriedDown : targets[start];
  }

  /** Stops the channels; calls in flight complete at once (fallback CLOSED). Idempotent. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (Target target : targets) {
      target.close();
    }
    for (Target target : targets) {
      try {
        target.channel.awaitTermination(1, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    // Delayed tasks still run after shutdown(): every pending budget timer fires.
    timer.shutdown();
    for (io.micrometer.core.instrument.Meter gauge : gauges) {
      registry.remove(gauge);
    }
  }

  /** One score() call: its attempts, its budget timer, and its single completion. */
  private final class Call implements Runnable {
    final ScoreRequest request;
    final long start;
    final CompletableFuture<Scores> future = new CompletableFuture<>();
    long deadline;
    private ScheduledFuture<?> budgetTimer;
    private ScheduledFuture<?> hedgeTimer;
    private boolean finished;
    private boolean fellBack;
    private int attempts;
    private int outstanding;
    private long tried;
    private Target first;
    private Status lastError;
    private long timerLateness;

    Call(ScoreRequest request, long start) {
      this.request = request;
      this.start = start;
    }

    void begin(long budgetNanos) {
      Objects.requireNonNull(request, "request");
      // The budget's timer: ours, unless gRPC's deadline (the same instant, on the channel's
      // event loop) ends every attempt: then a timer thread woken per call is CPU saved.
      ScheduledFuture<?> budgetTask = deadlineByTransport
          ? null : timer.schedule(this, budgetNanos, TimeUnit.NANOSECONDS);
      ScheduledFuture<?> hedgeTask = null;
      if (hedgeAfterNanos >= 0 && hedgeAfterNanos < budgetNanos && targets.length > 1) {
        hedgeTask = timer.schedule(this::hedge, hedgeAfterNanos, TimeUnit.NANOSECONDS);
      }
      Target target;
      synchronized (this) {
        budgetTimer = budgetTask;
        hedgeTimer = hedgeTask;
        if (finished) {
          cancelTimers();
          return;
        }
        target = startAttempt();
      }
      send(target);
    }

    /** Under the lock: books an attempt and returns its target. */
    private Target startAttempt() {
      int n = targets.length;
      int start = attempts == 0 ? Math.floorMod(next.getAndIncrement(), n)
          : (first.index + 1) % n;
      Target target = pick(tried, start);
      if (attempts == 0) {
        first = target;
      }
      tried |= 1L << target.index;
      attempts++;
      outstanding++;
      return target;
    }

    private void send(Target target) {
      target.transport.send(request, deadline, new Attempt());
    }

    private void hedge() {
      Target target;
      synchronized (this) {
        if (finished || attempts >= maxAttempts) {
          return;
        }
        target = startAttempt();
      }
      metrics.hedges.increment();
      send(target);
    }

    /** The budget timer. */
    @Override
    public void run() {
      timerLateness = System.nanoTime() - deadline;
      finish(null, FallbackReason.DEADLINE, lastError);
    }

    void onResponse(ScoreResponse response) {
      synchronized (this) {
        outstanding--;
        if (finished) {
          if (fellBack) {
            metrics.late.increment();
          }
          return;
        }
      }
      finish(response, null, null);
    }

    void onError(Status status) {
      Target retryOn = null;
      FallbackReason reason = null;
      synchronized (this) {
        outstanding--;
        if (finished) {
          if (fellBack) {
            metrics.late.increment();
          }
          return;
        }
        lastError = status;
        Status.Code code = status.getCode();
        if (code == Status.Code.UNAVAILABLE) {
          if (closed) {
            reason = FallbackReason.CLOSED;
          } else if (attempts < maxAttempts && deadline - System.nanoTime() > 0) {
            retryOn = startAttempt();
          } else if (outstanding == 0) {
            reason = FallbackReason.UNAVAILABLE;
          }
        } else if (code == Status.Code.DEADLINE_EXCEEDED) {
          // gRPC's own deadline timer (same deadline) beat ours: how late its thread ran.
          timerLateness = System.nanoTime() - deadline;
          metrics.late.increment(); // an attempt that had not answered by the budget
          if (outstanding == 0) {
            reason = FallbackReason.DEADLINE;
          }
        } else if (code == Status.Code.CANCELLED && closed) {
          reason = FallbackReason.CLOSED;
        } else if (outstanding == 0) {
          reason = FallbackReason.ERROR;
        }
      }
      if (retryOn != null) {
        metrics.retries.increment();
        send(retryOn);
      } else if (reason != null) {
        finish(null, reason, status);
      }
    }

    private void cancelTimers() {
      if (budgetTimer != null) {
        budgetTimer.cancel(false);
      }
      if (hedgeTimer != null) {
        hedgeTimer.cancel(false);
      }
    }

    void finish(ScoreResponse response, FallbackReason reason, Status status) {
      synchronized (this) {
        if (finished) {
          return;
        }
        finished = true;
        fellBack = reason != null;
        cancelTimers();
      }
      long nanos = System.nanoTime() - start;
      if (reason == null) {
        metrics.completed(null, false, nanos);
        Scores scores = new Scores(response, null);
        scores.elapsedNanos = nanos;
        future.complete(scores);
      } else if (fallback.fails() || request == null) {
        metrics.completed(reason, true, nanos);
        ScoringException failure = new ScoringException(reason, status);
        failure.elapsedNanos = nanos;
        failure.timerLatenessNanos = Math.max(0, timerLateness);
        future.completeExceptionally(failure);
      } else {
        metrics.completed(reason, false, nanos);
        Scores scores = fallback.scoresFor(request, reason);
        scores.timerLatenessNanos = Math.max(0, timerLateness);
        scores.elapsedNanos = nanos;
        future.complete(scores);
      }
    }

    /** One attempt's reply: forwards to its call. */
    private final class Attempt implements Transport.Reply {
      @Override
      public void onResponse(ScoreResponse response) {
        Call.this.onResponse(response);
      }

      @Override
      public void onError(Status status) {
        Call.this.onError(status);
      }
    }
  }

  /** Builds a {@link BidscoreClient}; only {@link #target}/{@link #targets} is required. */
  public static final class Builder {
    private final List<String> targets = new ArrayList<>();
    private TransportKind transport = TransportKind.UNARY;
    private FallbackPolicy fallback = FallbackPolicy.fail();
    private MeterRegistry registry = Metrics.globalRegistry;
    private int maxAttempts = 3;
    private Duration hedgeAfter;
    private int streamsPerChannel = 2;
    private String healthService = "bidscore.v1.Scorer";

    private Builder() {}

    /** A server, {@code host:port}; add as many as there are replicas. */
    public Builder target(String hostPort) {
      targets.add(Objects.requireNonNull(hostPort));
      return this;
    }

    public Builder targets(List<String> hostPorts) {
      hostPorts.forEach(this::target);
      return this;
    }

    /** Unary {@code Score} (the default) or multiplexed {@code ScoreStream}. */
    public Builder transport(TransportKind kind) {
      transport = Objects.requireNonNull(kind);
      return this;
    }

    /** What a call completes with when the server's scores are not there in time. */
    public Builder fallback(FallbackPolicy policy) {
      fallback = Objects.requireNonNull(policy);
      return this;
    }

    /** Where the client's meters go (default: Micrometer's global registry). */
    public Builder meterRegistry(MeterRegistry meterRegistry) {
      registry = Objects.requireNonNull(meterRegistry);
      return this;
    }

    /** Attempts per call, the first included (default 3): retries happen on UNAVAILABLE only. */
    public Builder maxAttempts(int attempts) {
      if (attempts < 1) {
        throw new IllegalArgumentException("maxAttempts must be at least 1");
      }
      maxAttempts = attempts;
      return this;
    }

    /**
     * Hedging (off by default): when a call has no answer after {@code delay}, send a second
     * attempt to another target; the first answer wins. Counts towards maxAttempts.
     */
    public Builder hedgeAfter(Duration delay) {
      hedgeAfter = delay;
      return this;
    }

    /** Long-lived ScoreStream streams per channel (stream transport only; default 2). */
    public Builder streamsPerChannel(int streams) {
      if (streams < 1) {
        throw new IllegalArgumentException("streamsPerChannel must be at least 1");
      }
      streamsPerChannel = streams;
      return this;
    }

    /**
     * The gRPC health service name watched per target (default {@code bidscore.v1.Scorer});
     * null turns health checking off (every target is always tried).
     */
    public Builder healthService(String service) {
      healthService = service;
      return this;
    }

    public BidscoreClient build() {
      return new BidscoreClient(this);
    }
  }
}
