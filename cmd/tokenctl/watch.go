package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// watchDetails is the watch command's usage beyond its summary.
const watchDetails = `Text output is one line per event: its kind (token, session, subject-cutoff, tenant-cutoff,
key-withdrawn, key-published), then key=value fields, the last one its cursor. "caught-up" lines
mark that every event up to their cursor has been printed (repeated only when the cursor moved);
a "resync" line means events after the cursor may have been lost: drop what was derived from
earlier lines, a replay of every retained event follows. -o json prints every message of the
stream as one JSON object per line, as grpcurl names its fields.
Exit status: 0 when interrupted (SIGINT, SIGTERM), at -for or at -until-caught-up; 1 when the
stream fails or the server ends it (resume with -cursor and the last cursor printed).`

func bindWatch(fs *flag.FlagSet) prepareFunc {
	cursor := fs.String("cursor", "", "resume after this `cursor`, printed with an earlier event; \"0\" replays every retained event first; empty starts from now")
	untilCaughtUp := fs.Bool("until-caught-up", false, "stop at the first caught-up line, once the events from -cursor on are printed")
	limit := fs.Duration("for", 0, "stop after this `duration` (0: run until interrupted)")
	return func() (callFunc, error) {
		if *limit < 0 {
			return nil, usagef("-for must not be negative, got %s", *limit)
		}
		req := &tokenauthorityv1.WatchRevocationsRequest{Cursor: *cursor}
		return func(ctx context.Context, c *clients, p *printer) error {
			return watch(ctx, c.token, req, p, *untilCaughtUp, *limit)
		}, nil
	}
}

// watch prints the stream's messages until ctx ends, limit elapses (when positive) or, with
// untilCaughtUp, the first caught-up marker arrives: those are the ends asked for, and return nil.
// The stream failing, or the server ending it, returns an error once every message received is
// printed.
func watch(
	ctx context.Context, c tokenauthorityv1.TokenServiceClient, req *tokenauthorityv1.WatchRevocationsRequest,
	p *printer, untilCaughtUp bool, limit time.Duration,
) error {
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	stream, err := c.WatchRevocations(ctx, req)
	if err != nil {
		return watchEnded(ctx, err)
	}
	w := &eventWriter{p: p}
	for {
		m, err := stream.Recv()
		if err != nil {
			return watchEnded(ctx, err)
		}
		if err := w.write(m); err != nil {
			return err
		}
		if untilCaughtUp && isMarker(m) {
			return nil
		}
	}
}

// watchEnded tells an end that was asked for (ctx ended: an interrupt, or -for) from a failure.
func watchEnded(ctx context.Context, err error) error {
	dl, hasDeadline := ctx.Deadline()
	switch {
	case ctx.Err() != nil:
		return nil
	case hasDeadline && status.Code(err) == codes.DeadlineExceeded && !time.Now().Before(dl):
		// grpc's own timer saw -for elapse before the context's did.
		return nil
	case errors.Is(err, io.EOF):
		// The server never ends the stream by itself: a proxy or a server bug did.
		return errors.New("the server ended the stream; resume with -cursor and the last cursor printed")
	}
	return err
}

// isMarker reports whether m is the stream's "caught up and alive" marker rather than an event.
func isMarker(m *tokenauthorityv1.WatchRevocationsResponse) bool {
	return m.GetKind() == tokenauthorityv1.RevocationKind_REVOCATION_KIND_UNSPECIFIED && !m.GetResync()
}

// eventWriter prints a stream's messages, one per line.
type eventWriter struct {
	p *printer
	// caughtUp is set by a printed marker and cleared by a resync; lastCursor is the cursor of the
	// last printed line. Together they leave out the markers that the stream repeats every second
	// while nothing happens.
	caughtUp   bool
	lastCursor string
}

func (w *eventWriter) write(m *tokenauthorityv1.WatchRevocationsResponse) error {
	if w.p.asJSON {
		b, err := jsonLineOptions.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
		}
		_, err = w.p.out.Write(append(b, '\n'))
		return err
	}
	switch {
	case isMarker(m) && w.caughtUp && m.GetCursor() == w.lastCursor:
		return nil
	case isMarker(m):
		w.caughtUp = true
	case m.GetResync():
		w.caughtUp = false
	}
	w.lastCursor = m.GetCursor()
	_, err := fmt.Fprintln(w.p.out, formatEvent(m))
	return err
}

// eventNames are the text names of the revocation kinds.
var eventNames = map[tokenauthorityv1.RevocationKind]string{
	tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN:          "token",
	tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION:        "session",
	tokenauthorityv1.RevocationKind_REVOCATION_KIND_SUBJECT_CUTOFF: "subject-cutoff",
	tokenauthorityv1.RevocationKind_REVOCATION_KIND_TENANT_CUTOFF:  "tenant-cutoff",
	tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_WITHDRAWN:  "key-withdrawn",
	tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_PUBLISHED:  "key-published",
}

// formatEvent renders one message as its name and its set fields as key=value pairs.
func formatEvent(m *tokenauthorityv1.WatchRevocationsResponse) string {
	var b strings.Builder
	switch name, known := eventNames[m.GetKind()]; {
	case m.GetResync():
		b.WriteString("resync")
	case isMarker(m):
		b.WriteString("caught-up")
	case known:
		b.WriteString(name)
	default:
		// A kind newer than this tokenctl: still one word.
		b.WriteString(strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(m.GetKind().String(), "REVOCATION_KIND_"), "_", "-")))
	}
	for _, f := range []struct{ key, value string }{
		{"jti", m.GetJti()},
		{"session", m.GetSessionId()},
		{"subject", m.GetSubject()},
		{"kid", m.GetKid()},
		{"cutoff", formatMilli(m.GetCutoffTime())},
		{"expires", formatMilli(m.GetExpireTime())},
		{"cursor", m.GetCursor()},
	} {
		if f.value != "" {
			fmt.Fprintf(&b, " %s=%s", f.key, fieldValue(f.value))
		}
	}
	return b.String()
}

// formatMilli renders ts in UTC with milliseconds, the precision of cut-offs; "" when unset.
func formatMilli(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// fieldValue quotes a value that would not read as one word of a key=value line.
func fieldValue(v string) string {
	needsQuotes := strings.IndexFunc(v, func(r rune) bool {
		return r <= ' ' || r == '"' || r == '=' || !unicode.IsPrint(r)
	}) >= 0
	if needsQuotes {
		return strconv.Quote(v)
	}
	return v
}
