// streamload: a load generator for bidscore.v1.Scorer/ScoreStream that times every message.
//
// ghz reports one latency per bidi call (the whole stream); a scoring service is judged per
// auction, so this tool stamps each message when it is sent (open loop: when it was due) and
// again when the response with its request_id arrives. Payloads are serialized ScoreRequests
// (a file of uvarint-length-prefixed messages); each is sent with a request_id unique to the
// run, appended as a second field 1 (protobuf keeps the last value), so the tool needs no
// generated code: a raw-bytes gRPC codec and protowire read request_id and error of each
// response.
//
//	streamload -target 127.0.0.1:50051 -data payloads.bin -streams 4 -in-flight 8 -duration 10s
//
// Closed loop (default): each stream keeps -in-flight messages outstanding. Open loop
// (-rps R): R messages per second over all streams, on schedule whatever the answers do
// (up to -in-flight outstanding per stream; a due message beyond that is counted as
// "ClientBacklog"). Loopback targets only; it stops after -duration plus -drain.
// -cpus N runs Go's scheduler on N cores (GOMAXPROCS; ghz has the same --cpus): next to a
// server on a small machine, one keeps the scheduler's idle spinning off the server's cores.
// Prints one JSON report on stdout.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

const method = "/bidscore.v1.Scorer/ScoreStream"

// rawCodec sends and receives []byte as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: unexpected %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: unexpected %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "bidscore-raw" }

type report struct {
	QPS           float64        `json:"qps"`
	MeanMs        *float64       `json:"mean_ms"`
	P50Ms         *float64       `json:"p50_ms"`
	P95Ms         *float64       `json:"p95_ms"`
	P99Ms         *float64       `json:"p99_ms"`
	Errors        map[string]int `json:"errors"`
	Count         int            `json:"count"`
	Streams       int            `json:"streams"`
	ErrorMessages map[string]int `json:"error_messages"`
	Duplicates    int            `json:"duplicates"`
	Unmatched     int            `json:"unmatched"`
	Cpus          int            `json:"cpus"`
}

type tally struct {
	mu         sync.Mutex
	latencies  []time.Duration
	errors     map[string]int
	messages   map[string]int
	duplicates int
	unmatched  int
}

func (t *tally) ok(d time.Duration) {
	t.mu.Lock()
	t.latencies = append(t.latencies, d)
	t.mu.Unlock()
}

func (t *tally) fail(code, message string, n int) {
	if n == 0 {
		return
	}
	t.mu.Lock()
	t.errors[code] += n
	if len(t.messages) < 100 {
		t.messages[message] += n
	}
	t.mu.Unlock()
}

type config struct {
	target   string
	streams  int
	inFlight int
	rps      float64
	duration time.Duration
	drain    time.Duration
	conns    int
	cpus     int
}

func main() {
	var cfg config
	var data string
	flag.StringVar(&cfg.target, "target", "", "host:port (loopback only)")
	flag.StringVar(&data, "data", "", "payload file: uvarint-length-prefixed ScoreRequests")
	flag.IntVar(&cfg.streams, "streams", 4, "concurrent streams")
	flag.IntVar(&cfg.conns, "connections", 1, "gRPC connections the streams are spread over")
	flag.IntVar(&cfg.inFlight, "in-flight", 8, "messages outstanding per stream")
	flag.Float64Var(&cfg.rps, "rps", 0, "open loop: messages per second over all streams (0 = closed loop)")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to send")
	flag.DurationVar(&cfg.drain, "drain", 5*time.Second, "how long to wait for the last responses")
	flag.IntVar(&cfg.cpus, "cpus", 0, "cores Go's scheduler runs on (GOMAXPROCS); 0 = all")
	flag.Parse()
	if err := run(cfg, data); err != nil {
		fmt.Fprintln(os.Stderr, "streamload:", err)
		os.Exit(1)
	}
}

func run(cfg config, data string) error {
	if err := checkLoopback(cfg.target); err != nil {
		return err
	}
	switch {
	case cfg.streams < 1 || cfg.streams > 1024:
		return errors.New("-streams must be in 1..1024")
	case cfg.inFlight < 1 || cfg.inFlight > 100000:
		return errors.New("-in-flight must be in 1..100000")
	case cfg.conns < 1 || cfg.conns > cfg.streams:
		return errors.New("-connections must be in 1..streams")
	case cfg.duration <= 0 || cfg.duration > time.Hour:
		return errors.New("-duration must be in (0, 1h]")
	case cfg.rps < 0:
		return errors.New("-rps must be >= 0")
	case cfg.cpus < 0 || cfg.cpus > 1024:
		return errors.New("-cpus must be in 0..1024 (0 = all cores)")
	}
	if cfg.cpus > 0 {
		runtime.GOMAXPROCS(cfg.cpus)
	}
	payloads, err := readPayloads(data)
	if err != nil {
		return err
	}
	conns := make([]*grpc.ClientConn, cfg.conns)
	for i := range conns {
		conn, err := grpc.NewClient(cfg.target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			return err
		}
		defer conn.Close()
		conns[i] = conn
	}
	t := &tally{errors: map[string]int{}, messages: map[string]int{}}
	start := time.Now()
	end := start.Add(cfg.duration)
	var wg sync.WaitGroup
	for s := 0; s < cfg.streams; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			runStream(conns[s%len(conns)], cfg, s, payloads, start, end, t)
		}(s)
	}
	wg.Wait()
	elapsed := time.Since(start)
	sending := cfg.duration
	if elapsed < sending {
		sending = elapsed
	}
	out := summarize(t, cfg.streams, sending)
	return json.NewEncoder(os.Stdout).Encode(out)
}

func checkLoopback(target string) error {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("-target %q: %w", target, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-target %q: loopback targets only", target)
	}
	return nil
}

func readPayloads(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out [][]byte
	for {
		n, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("%s: a payload of %d bytes", path, n)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, buf)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no payloads", path)
	}
	return out, nil
}

// withID is the payload with request_id set to id (a later field 1 wins in protobuf).
func withID(payload []byte, id string) []byte {
	out := make([]byte, 0, len(payload)+len(id)+4)
	out = append(out, payload...)
	out = protowire.AppendTag(out, 1, protowire.BytesType)
	return protowire.AppendString(out, id)
}

// responseFields reads request_id (1) and error (4: code 1, message 2) of a ScoreResponse.
func responseFields(b []byte) (id, code, message string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 4) {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return
			}
			if num == 1 {
				id = string(v)
			} else {
				code, message = errorFields(v)
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return
		}
		b = b[m:]
	}
	return
}

func errorFields(b []byte) (code, message string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return
			}
			if num == 1 {
				code = string(v)
			} else {
				message = string(v)
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return
		}
		b = b[m:]
	}
	return
}

// runStream sends on one stream (reopened after a break) until `end`, then waits for the
// outstanding responses up to -drain.
func runStream(conn *grpc.ClientConn, cfg config, s int, payloads [][]byte, start, end time.Time, t *tally) {
	// Open loop: this stream's share of the rate, phase-shifted so streams do not send in step.
	var interval time.Duration
	if cfg.rps > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.streams) / cfg.rps)
	}
	next := start.Add(interval * time.Duration(s) / time.Duration(cfg.streams))
	seq := 0
	for time.Now().Before(end) {
		next, seq = oneStream(conn, cfg, s, payloads, end, t, interval, next, seq)
	}
}

func oneStream(conn *grpc.ClientConn, cfg config, s int, payloads [][]byte, end time.Time,
	t *tally, interval time.Duration, next time.Time, seq int) (time.Time, int) {
	ctx, cancel := context.WithDeadline(context.Background(), end.Add(cfg.drain))
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		t.fail(codes.Unavailable.String(), err.Error(), 1)
		time.Sleep(50 * time.Millisecond)
		return next, seq
	}
	var mu sync.Mutex
	sent := map[string]time.Time{}
	slots := make(chan struct{}, cfg.inFlight)
	done := make(chan struct{})
	var recvErr error
	go func() {
		defer close(done)
		var buf []byte
		for {
			if err := stream.RecvMsg(&buf); err != nil {
				if !errors.Is(err, io.EOF) {
					recvErr = err
				}
				return
			}
			now := time.Now()
			id, code, message := responseFields(buf)
			mu.Lock()
			at, ok := sent[id]
			delete(sent, id)
			mu.Unlock()
			switch {
			case !ok:
				t.mu.Lock()
				if id != "" && seenBefore(id) {
					t.duplicates++
				} else {
					t.unmatched++
				}
				t.mu.Unlock()
				continue
			case code != "":
				t.fail(errorCodeName(code), message, 1)
			default:
				t.ok(now.Sub(at))
			}
			<-slots
		}
	}()
	broken := false
sending:
	for {
		if interval > 0 {
			wait := time.Until(next)
			if !next.Before(end) {
				break
			}
			if wait > 0 {
				select {
				case <-time.After(wait):
				case <-done:
					broken = true
					break sending
				}
			}
		} else if !time.Now().Before(end) {
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			if interval > 0 {
				// Open loop and the stream is full: the message is due now and cannot go.
				t.fail("ClientBacklog", "too many messages outstanding on the stream", 1)
				next = next.Add(interval)
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-done:
				broken = true
				break sending
			}
		}
		id := strconv.Itoa(s) + "-" + strconv.Itoa(seq)
		payload := withID(payloads[seq%len(payloads)], id)
		at := time.Now()
		if interval > 0 {
			at = next // latency from when the message was due: no coordinated omission
			next = next.Add(interval)
		}
		mu.Lock()
		sent[id] = at
		mu.Unlock()
		seq++
		markSent(id)
		if err := stream.SendMsg(&payload); err != nil {
			broken = true
			break
		}
	}
	if !broken {
		_ = stream.CloseSend()
	}
	<-done
	mu.Lock()
	missing := len(sent)
	mu.Unlock()
	if missing > 0 {
		code, message := "NoResponse", "no response before the stream ended"
		if recvErr != nil {
			st := status.Convert(recvErr)
			code, message = codeName(st.Code()), st.Message()
		}
		t.fail(code, message, missing)
	}
	// A stream that broke with nothing outstanding lost no message: the loop reopens it.
	return next, seq
}

var (
	seenMu sync.Mutex
	seen   = map[string]struct{}{}
)

// markSent and seenBefore tell a duplicated response (an id already answered) from a stray one.
func markSent(id string) {
	seenMu.Lock()
	seen[id] = struct{}{}
	seenMu.Unlock()
}

func seenBefore(id string) bool {
	seenMu.Lock()
	_, ok := seen[id]
	seenMu.Unlock()
	return ok
}

// codeName spells a status the way ghz's report does (InvalidArgument, Unavailable), so
// that unary and stream reports share their error keys.
func codeName(c codes.Code) string { return c.String() }

// errorCodeName turns a response's error.code (INVALID_ARGUMENT) into codeName's spelling.
func errorCodeName(name string) string {
	var c codes.Code
	if err := c.UnmarshalJSON([]byte(strconv.Quote(name))); err != nil {
		return name
	}
	return codeName(c)
}

func summarize(t *tally, streams int, sending time.Duration) report {
	t.mu.Lock()
	defer t.mu.Unlock()
	lat := t.latencies
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	out := report{
		Errors:        t.errors,
		ErrorMessages: t.messages,
		Streams:       streams,
		Duplicates:    t.duplicates,
		Unmatched:     t.unmatched,
		Cpus:          runtime.GOMAXPROCS(0),
	}
	failed := 0
	for _, n := range t.errors {
		failed += n
	}
	out.Count = len(lat) + failed
	if sending > 0 {
		out.QPS = float64(out.Count) / sending.Seconds()
	}
	if len(lat) > 0 {
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		mean := ms(sum / time.Duration(len(lat)))
		out.MeanMs = &mean
		out.P50Ms = pct(lat, 0.50)
		out.P95Ms = pct(lat, 0.95)
		out.P99Ms = pct(lat, 0.99)
	}
	return out
}

func pct(sorted []time.Duration, q float64) *float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	v := ms(sorted[i])
	return &v
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
