package dev.bidscore.client;

import dev.bidscore.v1.CandidateScores;
import dev.bidscore.v1.ModelVersion;
import dev.bidscore.v1.ScoreResponse;

/**
 * One auction's scores: the server's, or the {@link FallbackPolicy}'s ({@link #isFallback()}).
 * Scores of candidate i for model m: {@code score(i, m)}, models in {@link #response()}'s
 * {@code models} order (the request's order; a fallback's versions are empty).
 */
public final class Scores {
  private final ScoreResponse response;
  private final FallbackReason fallback;
  /**
   * For a fallback at the deadline: how long after the deadline the budget timer's thread got
   * to run (the OS scheduler's delay, which the client cannot control); 0 otherwise.
   */
  long timerLatenessNanos;
  long elapsedNanos;

  Scores(ScoreResponse response, FallbackReason fallback) {
    this.response = response;
    this.fallback = fallback;
  }

  public boolean isFallback() {
    return fallback != null;
  }

  /** From the score() call to this result, on the client's clock (System.nanoTime()). */
  public long elapsedNanos() {
    return elapsedNanos;
  }

  /** Why this is a fallback; null for the server's scores. */
  public FallbackReason fallbackReason() {
    return fallback;
  }

  /** The response (for a fallback: one built from the request and the policy's defaults). */
  public ScoreResponse response() {
    return response;
  }

  public String requestId() {
    return response.getRequestId();
  }

  public int modelCount() {
    return response.getModelsCount();
  }

  public int candidateCount() {
    return response.getCandidatesCount();
  }

  /** The index of {@code model} in the scores lists, or -1. */
  public int modelIndex(String model) {
    for (int i = 0; i < response.getModelsCount(); i++) {
      if (response.getModels(i).getName().equals(model)) {
        return i;
      }
    }
    return -1;
  }

  /** The version that scored {@code model} ("" for a fallback), or null if not in the reply. */
  public String version(String model) {
    int i = modelIndex(model);
    return i < 0 ? null : response.getModels(i).getVersion();
  }

  public float score(int candidate, int model) {
    return response.getCandidates(candidate).getScores(model);
  }

  /** The score of candidate {@code candidateId} for {@code model}; NaN if either is absent. */
  public float score(String candidateId, String model) {
    int m = modelIndex(model);
    if (m < 0) {
      return Float.NaN;
    }
    for (CandidateScores candidate : response.getCandidatesList()) {
      if (candidate.getId().equals(candidateId)) {
        return candidate.getScores(m);
      }
    }
    return Float.NaN;
  }

  @Override
  public String toString() {
    StringBuilder text = new StringBuilder("Scores{").append(requestId());
    if (fallback != null) {
      text.append(", fallback=").append(fallback);
    }
    text.append(", models=[");
    for (ModelVersion model : response.getModelsList()) {
      text.append(model.getName()).append('@').append(model.getVersion()).append(' ');
    }
    text.append("], ").append(candidateCount()).append(" candidates}");
    return text.toString();
  }
}
