package dev.bidscore.client;

/** Which RPC carries the calls; both behave the same towards the caller. */
public enum TransportKind {
  /** One unary {@code Score} RPC per attempt. */
  UNARY,
  /**
   * {@code ScoreStream}: a few long-lived bidirectional streams per channel, requests matched to
   * responses by {@code request_id}; needs a server with the ScoreStream RPC.
   */
  STREAM
}
