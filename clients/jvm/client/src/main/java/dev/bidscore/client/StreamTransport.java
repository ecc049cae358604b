package dev.bidscore.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.UnknownFieldSet;
import dev.bidscore.v1.ScoreRequest;
import dev.bidscore.v1.ScoreResponse;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.protobuf.ProtoUtils;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code ScoreStream}: a few long-lived bidirectional streams per channel, requests spread
 * round-robin over the open ones and matched to responses by {@code request_id} (rewritten to a
 * client-unique id on the wire, restored in the response). A response with {@code error} set
 * becomes that status. When a stream breaks, each request it had not answered is handed back as
 * UNAVAILABLE, so the client resends it (on another target's stream) while its budget lasts;
 * the stream is reopened with exponential backoff.
 */
final class StreamTransport implements Transport {
  /** ScoreStream with protobuf-java's marshallers (what a server or a test speaks). */
  static final MethodDescriptor<ScoreRequest, ScoreResponse> SCORE_STREAM =
      MethodDescriptor.<ScoreRequest, ScoreResponse>newBuilder()
          .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
          .setFullMethodName(MethodDescriptor.generateFullMethodName("bidscore.v1.Scorer",
              "ScoreStream"))
          .setRequestMarshaller(ProtoUtils.marshaller(ScoreRequest.getDefaultInstance()))
          .setResponseMarshaller(ProtoUtils.marshaller(ScoreResponse.getDefaultInstance()))
          .build();
  /** The same method as this transport sends it: each request with its wire id, uncopied. */
  static final MethodDescriptor<RequestMarshaller.Outbound, ScoreResponse> SCORE_STREAM_OUT =
      SCORE_STREAM.toBuilder(RequestMarshaller.OUTBOUND,
          ProtoUtils.marshaller(ScoreResponse.getDefaultInstance())).build();
  private static final int ERROR_FIELD = 4; // ScoreResponse.error
  private static final com.google.protobuf.Descriptors.FieldDescriptor ERROR_DESCRIPTOR =
      ScoreResponse.getDescriptor().findFieldByNumber(ERROR_FIELD);
  private static final long MIN_BACKOFF_NANOS = TimeUnit.MILLISECONDS.toNanos(20);
  private static final long MAX_BACKOFF_NANOS = TimeUnit.SECONDS.toNanos(2);
  private static final long SWEEP_NANOS = TimeUnit.SECONDS.toNanos(1);

  private final ManagedChannel channel;
  private final ScheduledExecutorService scheduler;
  private final ClientMetrics metrics;
  private final Stream[] streams;
  private final AtomicInteger next = new AtomicInteger();
  private final AtomicLong ids = new AtomicLong();
  private volatile boolean closed;

  StreamTransport(ManagedChannel channel, int streamsPerChannel,
      ScheduledExecutorService scheduler, ClientMetrics metrics) {
    this.channel = channel;
    this.scheduler = scheduler;
    this.metrics = metrics;
    streams = new Stream[streamsPerChannel];
    for (int i = 0; i < streams.length; i++) {
      streams[i] = new Stream();
      streams[i].open();
    }
    scheduleSweep();
  }

  @Override
  public void send(ScoreRequest request, long deadlineNanos, Reply reply) {
    int n = streams.length;
    int start = Math.floorMod(next.getAndIncrement(), n);
    for (int i = 0; i < n; i++) {
      Stream stream = streams[(start + i) % n];
      if (stream.trySend(request, deadlineNanos, reply)) {
        return;
      }
    }
    reply.onError(Status.UNAVAILABLE.withDescription("no open ScoreStream on this channel"));
  }

  @Override
  public void close() {
    closed = true;
    for (Stream stream : streams) {
      stream.cancel();
    }
  }

  private void scheduleSweep() {
    try {
      scheduler.schedule(this::sweep, SWEEP_NANOS, TimeUnit.NANOSECONDS);
    } catch (RejectedExecutionException closing) {
      // the client is closing
    }
  }

  /** Forgets requests whose budget ended long ago and that never got a response. */
  private void sweep() {
    if (closed) {
      return;
    }
    long cutoff = System.nanoTime() - SWEEP_NANOS;
    for (Stream stream : streams) {
      for (Iterator<Map.Entry<String, Pending>> it = stream.pending.entrySet().iterator();
          it.hasNext(); ) {
        Pending pending = it.next().getValue();
        if (pending.deadline - cutoff < 0) {
          it.remove();
          pending.reply.onError(Status.DEADLINE_EXCEEDED.withDescription("no response"));
        }
      }
    }
    scheduleSweep();
  }

  /**
   * The per-message error (ScoreResponse.error, field 4) as a status, or null. Read through the
   * descriptor when the generated ScoreResponse knows the field, else from unknown fields (the
   * stubs generated before the field was added to the proto).
   */
  private static Status errorOf(ScoreResponse response) {
    String code;
    String message;
    if (ERROR_DESCRIPTOR != null) {
      if (!response.hasField(ERROR_DESCRIPTOR)) {
        return null;
      }
      com.google.protobuf.Message error = (com.google.protobuf.Message)
          response.getField(ERROR_DESCRIPTOR);
      code = String.valueOf(error.getField(error.getDescriptorForType().findFieldByNumber(1)));
      message = String.valueOf(error.getField(error.getDescriptorForType().findFieldByNumber(2)));
    } else {
      UnknownFieldSet.Field field = response.getUnknownFields().getField(ERROR_FIELD);
      if (field == null || field.getLengthDelimitedList().isEmpty()) {
        return null;
      }
      try {
        UnknownFieldSet error = UnknownFieldSet.parseFrom(field.getLengthDelimitedList().get(0));
        code = text(error, 1);
        message = text(error, 2);
      } catch (InvalidProtocolBufferException e) {
        return Status.INTERNAL.withDescription("unreadable error in response");
      }
    }
    Status.Code status;
    try {
      status = Status.Code.valueOf(code);
    } catch (IllegalArgumentException e) {
      status = Status.Code.UNKNOWN;
    }
    return Status.fromCode(status).withDescription(message);
  }

  private static String text(UnknownFieldSet set, int number) {
    UnknownFieldSet.Field field = set.getField(number);
    if (field == null || field.getLengthDelimitedList().isEmpty()) {
      return "";
    }
    ByteString value = field.getLengthDelimitedList().get(0);
    return value.toStringUtf8();
  }

  private record Pending(String requestId, long deadline, Reply reply) {}

  /** One ScoreStream call; replaced by a new one (after a backoff) when it breaks. */
  private final class Stream {
    final Map<String, Pending> pending = new ConcurrentHashMap<>();
    private ClientCall<RequestMarshaller.Outbound, ScoreResponse> call; // guarded by this
    private boolean open; // guarded by this
    private long backoffNanos = MIN_BACKOFF_NANOS; // guarded by this
    private Listener current;

    synchronized void open() {
      if (closed) {
        return;
      }
      call = channel.newCall(SCORE_STREAM_OUT, CallOptions.DEFAULT);
      current = new Listener(call);
      open = true;
      call.start(current, new Metadata());
      call.request(Integer.MAX_VALUE);
    }

    boolean trySend(ScoreRequest request, long deadline, Reply reply) {
      String wireId = Long.toString(ids.incrementAndGet(), 36);
      Pending entry = new Pending(request.getRequestId(), deadline, reply);
      synchronized (this) {
        if (!open) {
          return false;
        }
        pending.put(wireId, entry);
        try {
          // The request as it is, with wireId as its request_id on the wire (no copy).
          call.sendMessage(new RequestMarshaller.Outbound(request, wireId));
        } catch (RuntimeException e) {
          pending.remove(wireId);
          return false;
        }
      }
      return true;
    }

    synchronized void cancel() {
      if (call != null) {
        call.cancel("client closed", null);
      }
    }

    /** Listens to one call (a reopened stream gets a new listener). */
    private final class Listener extends ClientCall.Listener<ScoreResponse> {
      private final ClientCall<RequestMarshaller.Outbound, ScoreResponse> mine;

      Listener(ClientCall<RequestMarshaller.Outbound, ScoreResponse> mine) {
        this.mine = mine;
      }

      @Override
      public void onMessage(ScoreResponse response) {
        synchronized (Stream.this) {
          backoffNanos = MIN_BACKOFF_NANOS;
        }
        Pending entry = pending.remove(response.getRequestId());
        if (entry == null) {
          return; // answered after a sweep: nobody waits for it
        }
        Status error = errorOf(response);
        if (error != null) {
          entry.reply.onError(error);
        } else {
          entry.reply.onResponse(response.toBuilder().setRequestId(entry.requestId).build());
        }
      }

      @Override
      public void onClose(Status status, Metadata trailers) {
        long delay;
        synchronized (Stream.this) {
          if (call != mine) {
            return;
          }
          open = false;
          delay = backoffNanos;
          backoffNanos = Math.min(backoffNanos * 2, MAX_BACKOFF_NANOS);
        }
        // What the broken stream had not answered goes back to the client, which resends it
        // elsewhere while its budget lasts (UNIMPLEMENTED and such are not resent).
        Status handBack = status.getCode() == Status.Code.UNIMPLEMENTED
            ? status : Status.UNAVAILABLE.withDescription("stream broke: " + status);
        for (Iterator<Pending> it = pending.values().iterator(); it.hasNext(); ) {
          Pending entry = it.next();
          it.remove();
          if (handBack.getCode() == Status.Code.UNAVAILABLE) {
            metrics.streamResends.increment();
          }
          entry.reply.onError(handBack);
        }
        if (closed) {
          return;
        }
        try {
          scheduler.schedule(() -> {
            metrics.streamReopens.increment();
            open();
          }, delay, TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException closing) {
          // the client is closing
        }
      }
    }
  }
}
