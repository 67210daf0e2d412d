package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// watchScript is cannedEvents followed by what a long watch sees: a new event after the caught-up
// marker, a marker that repeats its cursor, a resynchronisation and the replay's marker. The stream
// then fails, which ends the run.
var watchScript = append(append([]*tokenauthorityv1.WatchRevocationsResponse{}, cannedEvents...),
	&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: "jti with\ttab", Cursor: "106-0"},
	&tokenauthorityv1.WatchRevocationsResponse{Cursor: "106-0"},
	&tokenauthorityv1.WatchRevocationsResponse{Resync: true, Cursor: "0"},
	&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION, SessionId: "sid-2", Cursor: "107-0"},
	&tokenauthorityv1.WatchRevocationsResponse{Cursor: "107-0"},
	&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind(42), Cursor: "108-0"},
)

// watchText is what watch prints for watchScript.
const watchText = `token jti=jti-1 expires=2026-03-31T12:00:00.000Z cursor=100-0
session session=sid-1 expires=2026-03-31T12:00:00.000Z cursor=101-0
subject-cutoff subject="alice smith" cutoff=2026-03-01T12:00:00.123Z expires=2026-03-31T12:00:00.000Z cursor=102-0
tenant-cutoff cutoff=2026-03-01T12:00:00.123Z expires=2026-03-31T12:00:00.000Z cursor=103-0
key-withdrawn kid=kid-1 expires=2026-03-31T12:00:00.000Z cursor=104-0
key-published kid=kid-2 cursor=105-0
caught-up cursor=105-0
token jti="jti with\ttab" cursor=106-0
resync cursor=0
session session=sid-2 cursor=107-0
caught-up cursor=107-0
42 cursor=108-0
`

// TestWatchOutput checks the text and JSON lines of every kind of message, and that a failing
// stream exits with status 1 once what it received is printed.
func TestWatchOutput(t *testing.T) {
	t.Parallel()
	t.Run("text", func(t *testing.T) {
		t.Parallel()
		rec, addr := startFake(t)
		rec.script(watchScript, status.Error(codes.Unavailable, "the server is shutting down; reconnect with the last cursor"))
		r := runCLI(t, nil, withServer(addr, "watch", "-cursor", "0")...)
		if r.code != exitRPC {
			t.Errorf("exit code %d, want %d", r.code, exitRPC)
		}
		if r.stdout != watchText {
			t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, watchText)
		}
		if want := "tokenctl: Unavailable: the server is shutting down; reconnect with the last cursor\n"; r.stderr != want {
			t.Errorf("stderr = %q, want %q", r.stderr, want)
		}
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		rec, addr := startFake(t)
		rec.script(watchScript, status.Error(codes.Unavailable, "gone"))
		r := runCLI(t, nil, withServer(addr, "-o", "json", "watch", "-cursor", "0")...)
		if r.code != exitRPC {
			t.Errorf("exit code %d, want %d", r.code, exitRPC)
		}
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != len(watchScript) {
			t.Fatalf("%d lines, want one per message (%d):\n%s", len(lines), len(watchScript), r.stdout)
		}
		want := []string{
			`{"kind":"REVOCATION_KIND_TOKEN","jti":"jti-1","expireTime":"2026-03-31T12:00:00Z","cursor":"100-0"}`,
			`{"kind":"REVOCATION_KIND_SESSION","sessionId":"sid-1","expireTime":"2026-03-31T12:00:00Z","cursor":"101-0"}`,
			`{"kind":"REVOCATION_KIND_SUBJECT_CUTOFF","subject":"alice smith","cutoffTime":"2026-03-01T12:00:00.123Z","expireTime":"2026-03-31T12:00:00Z","cursor":"102-0"}`,
			`{"kind":"REVOCATION_KIND_TENANT_CUTOFF","cutoffTime":"2026-03-01T12:00:00.123Z","expireTime":"2026-03-31T12:00:00Z","cursor":"103-0"}`,
			`{"kind":"REVOCATION_KIND_KEY_WITHDRAWN","kid":"kid-1","expireTime":"2026-03-31T12:00:00Z","cursor":"104-0"}`,
			`{"kind":"REVOCATION_KIND_KEY_PUBLISHED","kid":"kid-2","cursor":"105-0"}`,
			`{"cursor":"105-0"}`,
			`{"cursor":"105-0"}`,
			`{"kind":"REVOCATION_KIND_TOKEN","jti":"jti with\ttab","cursor":"106-0"}`,
			`{"cursor":"106-0"}`,
			`{"cursor":"0","resync":true}`,
			`{"kind":"REVOCATION_KIND_SESSION","sessionId":"sid-2","cursor":"107-0"}`,
			`{"cursor":"107-0"}`,
			`{"kind":42,"cursor":"108-0"}`,
		}
		for i, line := range lines {
			var got, wantV any
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, line)
			}
			if err := json.Unmarshal([]byte(want[i]), &wantV); err != nil {
				t.Fatal(err)
			}
			if g, w := mustMarshal(t, got), mustMarshal(t, wantV); g != w {
				t.Errorf("line %d = %s, want %s", i+1, g, w)
			}
		}
	})
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWatchEnds checks how each way a watch ends sets the exit status: the ends asked for
// succeed, the others fail.
func TestWatchEnds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		serverErr error // the answer to the call itself
		end       error // how the stream ends after the canned events
		wantCode  int
		wantErr   string
		// wantOut, when set, is how stdout must end.
		wantOut string
	}{
		{name: "until caught up", args: []string{"watch", "-until-caught-up"}, wantCode: exitOK,
			wantOut: "key-published kid=kid-2 cursor=105-0\ncaught-up cursor=105-0\n"},
		{name: "-for elapses", args: []string{"watch", "-for", "1ms"}, wantCode: exitOK},
		{name: "-timeout does not bound a watch", args: []string{"-timeout", "1ns", "watch", "-until-caught-up"}, wantCode: exitOK,
			wantOut: "caught-up cursor=105-0\n"},
		{name: "server ends the stream", args: []string{"watch"}, end: errEndStream, wantCode: exitRPC,
			wantErr: "tokenctl: the server ended the stream; resume with -cursor and the last cursor printed\n"},
		{name: "stream fails", args: []string{"watch"}, end: status.Error(codes.Unavailable, "gone"), wantCode: exitRPC,
			wantErr: "tokenctl: Unavailable: gone\n"},
		{name: "call refused", args: []string{"watch", "-cursor", "bogus"}, serverErr: status.Error(codes.InvalidArgument, "cursor: not a cursor"),
			wantCode: exitRPC, wantErr: "tokenctl: InvalidArgument: cursor: not a cursor\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, addr := startFake(t)
			rec.fail(tc.serverErr)
			rec.script(nil, tc.end)
			r := runCLI(t, nil, withServer(addr, tc.args...)...)
			if r.code != tc.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", r.code, tc.wantCode, r.stderr)
			}
			if r.stderr != tc.wantErr {
				t.Errorf("stderr = %q, want %q", r.stderr, tc.wantErr)
			}
			if !strings.HasSuffix(r.stdout, tc.wantOut) {
				t.Errorf("stdout = %q, want it to end with %q", r.stdout, tc.wantOut)
			}
		})
	}
}

// TestWatchEndsWhenCanceled cancels run's context once the stream has caught up, as an interrupt
// does, and expects a clean end.
func TestWatchEndsWhenCanceled(t *testing.T) {
	t.Parallel()
	_, addr := startFake(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, withServer(addr, "watch", "-cursor", "0"), nil, pw, &stderr, func(string) string { return "" })
		pw.Close()
	}()
	waitForLine(t, pr, "caught-up cursor=105-0")
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("exit code %d, want 0", code)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr = %q, want empty", stderr.String())
	}
}

// TestWatchEndsOnInterrupt runs tokenctl as a process (this test binary running main), sends it
// SIGINT once the stream has caught up, and expects exit status 0 and nothing on stderr.
func TestWatchEndsOnInterrupt(t *testing.T) {
	t.Parallel()
	_, addr := startFake(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-addr", addr, "watch", "-cursor", "0")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKENCTL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, runMainEnv+"=1", envAPIKey+"="+testKey)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForLine(t, stdout, "caught-up cursor=105-0")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("tokenctl watch after SIGINT: %v (exit code %d), want exit status 0; stderr:\n%s",
			err, cmd.ProcessState.ExitCode(), stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr = %q, want empty", stderr.String())
	}
}

// waitForLine reads r until a line equal to want, then keeps draining it in the background so
// that the writer never blocks.
func waitForLine(t *testing.T, r io.Reader, want string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == want {
			go func() { _, _ = io.Copy(io.Discard, r) }()
			return
		}
	}
	t.Fatalf("output ended (%v) before the line %q", sc.Err(), want)
}
