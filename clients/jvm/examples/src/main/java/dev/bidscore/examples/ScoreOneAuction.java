package dev.bidscore.examples;

import dev.bidscore.client.BidscoreClient;
import dev.bidscore.client.FallbackPolicy;
import dev.bidscore.client.Scores;
import dev.bidscore.v1.Candidate;
import dev.bidscore.v1.ScoreRequest;
import java.time.Duration;
import java.util.Map;

/**
 * Scores one auction (two candidate ads) with ctr and cvr and prints the scores.
 *
 * <pre>
 * mvn -q -f clients/jvm/pom.xml install -DskipTests
 * mvn -q -f clients/jvm/examples/pom.xml exec:java -Dexec.args="127.0.0.1:50051"
 * </pre>
 */
public final class ScoreOneAuction {
  private ScoreOneAuction() {}

  public static void main(String[] args) throws Exception {
    String target = args.length > 0 ? args[0] : "127.0.0.1:50051";
    ScoreRequest auction = ScoreRequest.newBuilder()
        .setRequestId("auction-1")
        .addModels("ctr").addModels("cvr")
        .putAllContext(Map.of(
            "app_category", "music", "device_os", "android", "device_os_version", "12",
            "device_type", "phone", "country", "GB", "connection_type", "4g",
            "ad_size", "300x250", "user_segment", "lookalike", "bid_floor", "2.81"))
        .addCandidates(Candidate.newBuilder().setId("ad-1").putAllFeatures(Map.of(
            "campaign_id", "cmp-0272", "advertiser_id", "adv-006", "ad_category", "education",
            "creative_format", "video", "bid_price", "3.87")))
        .addCandidates(Candidate.newBuilder().setId("ad-2").putAllFeatures(Map.of(
            "campaign_id", "cmp-0190", "advertiser_id", "adv-005", "ad_category", "ride_hailing",
            "creative_format", "interstitial", "bid_price", "2.95")))
        .build();

    try (BidscoreClient client = BidscoreClient.newBuilder()
        .target(target)
        .fallback(FallbackPolicy.defaults(Map.of("ctr", 0.01f, "cvr", 0.02f)))
        .build()) {
      // At start-up only: wait (blocking) for the connection, so the budget below is not
      // spent on connecting.
      client.awaitServing(Duration.ofSeconds(5));
      // Never waits past 50 ms: the server's scores, or the defaults tagged as a fallback. (A
      // fresh JVM's first call also pays for class loading and cold code: a bidder warms up.)
      Scores scores = client.score(auction, Duration.ofMillis(50)).join();
      System.out.println((scores.isFallback()
          ? "fallback (" + scores.fallbackReason() + ")"
          : "ctr v" + scores.version("ctr") + ", cvr v" + scores.version("cvr"))
          + String.format(" in %.1f ms", scores.elapsedNanos() / 1e6));
      for (int c = 0; c < scores.candidateCount(); c++) {
        String id = scores.response().getCandidates(c).getId();
        System.out.printf("%s  ctr=%.6f  cvr=%.6f%n", id, scores.score(id, "ctr"),
            scores.score(id, "cvr"));
      }
    }
  }
}
