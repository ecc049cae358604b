package dev.bidscore.client;

/** Why a call completed without the server's scores. */
public enum FallbackReason {
  /** The budget ran out before a response arrived. */
  DEADLINE,
  /** No target could take the call (UNAVAILABLE from every attempt the budget allowed). */
  UNAVAILABLE,
  /** The server refused the request (a non-retryable gRPC status, or a per-message error). */
  ERROR,
  /** The client was closed. */
  CLOSED;

  final String tag = name().toLowerCase(java.util.Locale.ROOT);
}
