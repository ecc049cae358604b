package dev.bidscore.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.bidscore.v1.Candidate;
import dev.bidscore.v1.ScoreRequest;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Real bidscore servers for the tests: `control serve` subprocesses on 127.0.0.1 following a
 * registry that {@link #models()} trains once per JVM (datagen, ctr v1 and cvr v1 promoted, ctr
 * v2 registered), and the offline scores of {@code offline_scores.py} for the same requests.
 *
 * <p>The `control` executable: system property {@code bidscore.control} (Maven sets it to the
 * repository's {@code .venv/bin/control}), else {@code $BIDSCORE_CONTROL}.
 */
final class RealServer implements AutoCloseable {
  static final int REQUESTS = 20;
  static final int CANDIDATES = 5;
  private static Models models;
  /** Every server started, killed when the JVM exits whatever happened to the test. */
  private static final List<Process> STARTED = new java.util.concurrent.CopyOnWriteArrayList<>();

  static {
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      for (Process process : STARTED) {
        process.descendants().forEach(ProcessHandle::destroyForcibly);
        process.destroyForcibly();
      }
      if (models != null) {
        delete(models.home());
      }
    }));
  }

  private static void delete(Path root) {
    try (java.util.stream.Stream<Path> paths = Files.walk(root)) {
      paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException | RuntimeException ignored) {
      // best effort
    }
  }

  final Process process;
  final int port;
  final Path log;

  private RealServer(Process process, int port, Path log) {
    this.process = process;
    this.port = port;
    this.log = log;
  }

  String target() {
    return "127.0.0.1:" + port;
  }

  /** The trained registry and the offline scores, shared by every test class of this JVM. */
  record Models(Path home, List<ScoreRequest> requests, JsonNode scores) {
    /** Offline score of request r, candidate c, for model at version. */
    double score(String model, String version, int r, int c) {
      return scores.get(model).get(version).get(r).get(c).asDouble();
    }
  }

  static Path control() {
    String configured = System.getProperty("bidscore.control",
        System.getenv().getOrDefault("BIDSCORE_CONTROL", "../../../.venv/bin/control"));
    Path path = Path.of(configured).toAbsolutePath().normalize();
    if (!Files.isExecutable(path)) {
      throw new IllegalStateException("no `control` executable at " + path
          + " (run `make install`, or pass -Dbidscore.control=/path/to/.venv/bin/control)");
    }
    return path;
  }

  static Path python() {
    return control().resolveSibling("python");
  }

  static synchronized Models models() throws Exception {
    if (models != null) {
      return models;
    }
    Path home = Files.createTempDirectory("bidscore-jvm-tests");
    Path logs = home.resolve("logs");
    String control = control().toString();
    run(home, control, "datagen", "--rows", "2000", "--days", "2", "--out", logs.toString());
    run(home, control, "train", "--model", "ctr", "--algo", "lr", "--data", logs.toString(),
        "--epochs", "2");
    run(home, control, "promote", "ctr", "1", "--force");
    run(home, control, "train", "--model", "cvr", "--algo", "lr", "--data", logs.toString(),
        "--epochs", "2");
    run(home, control, "promote", "cvr", "1", "--force");
    // A second ctr version, for the alias move (different seed, so different scores).
    run(home, control, "train", "--model", "ctr", "--algo", "lr", "--data", logs.toString(),
        "--epochs", "3", "--seed", "5");
    Path script = Path.of(RealServer.class.getResource("/offline_scores.py").toURI());
    String json = run(home, python().toString(), script.toString(), "--requests",
        String.valueOf(REQUESTS), "--candidates", String.valueOf(CANDIDATES), "--models",
        "ctr,cvr");
    JsonNode root = new ObjectMapper().readTree(json);
    List<ScoreRequest> requests = new ArrayList<>();
    for (JsonNode payload : root.get("requests")) {
      ScoreRequest.Builder request = ScoreRequest.newBuilder()
          .setRequestId(payload.get("request_id").asText())
          .addModels("ctr").addModels("cvr");
      fields(payload.get("context"), request::putContext);
      for (JsonNode cand : payload.get("candidates")) {
        Candidate.Builder candidate = Candidate.newBuilder().setId(cand.get("id").asText());
        fields(cand.get("features"), candidate::putFeatures);
        request.addCandidates(candidate);
      }
      requests.add(request.build());
    }
    models = new Models(home, List.copyOf(requests), root.get("scores"));
    return models;
  }

  private static void fields(JsonNode object, java.util.function.BiConsumer<String, String> put) {
    for (Iterator<Map.Entry<String, JsonNode>> it = object.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> field = it.next();
      put.accept(field.getKey(), field.getValue().asText());
    }
  }

  /** Runs a command with BIDSCORE_HOME=home; its stdout, or an exception with its output. */
  static String run(Path home, String... command) throws IOException, InterruptedException {
    Path err = Files.createTempFile(home, "cmd", ".log");
    ProcessBuilder builder = new ProcessBuilder(command).redirectError(err.toFile());
    builder.environment().put("BIDSCORE_HOME", home.toString());
    Process process = builder.start();
    process.getOutputStream().close();
    byte[] out = process.getInputStream().readAllBytes();
    if (!process.waitFor(120, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      throw new IllegalStateException("timed out: " + String.join(" ", command));
    }
    if (process.exitValue() != 0) {
      throw new IllegalStateException(String.join(" ", command) + " exited "
          + process.exitValue() + ":\n" + new String(out) + Files.readString(err));
    }
    return new String(out);
  }

  static int freePort() {
    try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return socket.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Starts `control serve` following {@code home}'s registry and waits for SERVING. */
  static RealServer start(Path home, String... extra) throws Exception {
    RealServer server = launch(home, extra);
    server.waitServing(90);
    return server;
  }

  /** Starts `control serve` without waiting (then {@link #waitServing}). */
  static RealServer launch(Path home, String... extra) throws Exception {
    int port = freePort();
    Path log = Files.createTempFile(home, "serve-" + port + "-", ".log");
    List<String> command = new ArrayList<>(List.of(control().toString(), "serve",
        "--host", "127.0.0.1", "--port", String.valueOf(port), "--models", "ctr,cvr",
        "--poll-interval", "0.5", "--grace", "5",
        "--cache-dir", home.resolve("cache-" + port).toString()));
    command.addAll(List.of(extra));
    ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(log.toFile());
    builder.environment().put("BIDSCORE_HOME", home.toString());
    RealServer server = new RealServer(builder.start(), port, log);
    STARTED.add(server.process);
    server.process.getOutputStream().close();
    return server;
  }

  void waitServing(double seconds) throws Exception {
    long deadline = System.nanoTime() + (long) (seconds * 1e9);
    ManagedChannel channel =
        Grpc.newChannelBuilder(target(), InsecureChannelCredentials.create()).build();
    try {
      while (System.nanoTime() < deadline) {
        if (!process.isAlive()) {
          throw new IllegalStateException("server exited " + process.exitValue() + ":\n" + log());
        }
        try {
          HealthCheckResponse reply = HealthGrpc.newBlockingStub(channel)
              .withDeadlineAfter(1, TimeUnit.SECONDS)
              .check(HealthCheckRequest.newBuilder().setService("bidscore.v1.Scorer").build());
          if (reply.getStatus() == HealthCheckResponse.ServingStatus.SERVING) {
            return;
          }
        } catch (RuntimeException notYet) {
          // starting
        }
        Thread.sleep(100);
      }
      throw new IllegalStateException("server not SERVING in " + seconds + " s:\n" + log());
    } finally {
      channel.shutdownNow();
    }
  }

  String log() {
    try {
      return Files.readString(log);
    } catch (IOException e) {
      return "(no log: " + e + ")";
    }
  }

  /** SIGTERM (the server drains), then waits for it to exit. */
  void stop() throws InterruptedException {
    process.destroy();
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      kill();
    }
  }

  /** SIGKILL, no goodbye. */
  void kill() throws InterruptedException {
    process.descendants().forEach(ProcessHandle::destroyForcibly);
    process.destroyForcibly();
    process.waitFor(30, TimeUnit.SECONDS);
  }

  @Override
  public void close() throws InterruptedException {
    if (process.isAlive()) {
      kill();
    }
  }
}
