package dev.bidscore.client;

import dev.bidscore.v1.Candidate;
import dev.bidscore.v1.CandidateScores;
import dev.bidscore.v1.ModelVersion;
import dev.bidscore.v1.ScoreRequest;
import dev.bidscore.v1.ScoreResponse;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What a call completes with when the server's scores are not there in time (deadline,
 * UNAVAILABLE, a refused request, a closed client): a default score per model, or failure.
 */
public final class FallbackPolicy {
  private final Map<String, Float> defaults; // null: fail

  private FallbackPolicy(Map<String, Float> defaults) {
    this.defaults = defaults;
  }

  /**
   * Every candidate gets {@code defaults.get(model)} for each requested model (the request's
   * {@code models}, or every model of the map, in its order, when the request names none). A
   * requested model missing from the map scores {@code NaN}.
   */
  public static FallbackPolicy defaults(Map<String, Float> defaults) {
    return new FallbackPolicy(new LinkedHashMap<>(Objects.requireNonNull(defaults)));
  }

  /** The future completes exceptionally with a {@link ScoringException}, within the budget. */
  public static FallbackPolicy fail() {
    return new FallbackPolicy(null);
  }

  boolean fails() {
    return defaults == null;
  }

  Scores scoresFor(ScoreRequest request, FallbackReason reason) {
    List<String> models =
        request.getModelsCount() > 0 ? request.getModelsList() : new ArrayList<>(defaults.keySet());
    float[] values = new float[models.size()];
    ScoreResponse.Builder response = ScoreResponse.newBuilder().setRequestId(request.getRequestId());
    for (int m = 0; m < values.length; m++) {
      Float value = defaults.get(models.get(m));
      values[m] = value == null ? Float.NaN : value;
      response.addModels(ModelVersion.newBuilder().setName(models.get(m)));
    }
    for (Candidate candidate : request.getCandidatesList()) {
      CandidateScores.Builder scores = response.addCandidatesBuilder().setId(candidate.getId());
      for (float value : values) {
        scores.addScores(value);
      }
    }
    return new Scores(response.build(), reason);
  }
}
