package grpcserver

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/revocation"
)

type lagRecorder []time.Duration

func (l *lagRecorder) RevocationDelivered(lag time.Duration) { *l = append(*l, lag) }

// TestObserveLag checks that only events sent while the watch is live report a lag: not the replay
// before the first marker, nor the one after a resynchronisation, nor an event whose send failed.
func TestObserveLag(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	rec := &lagRecorder{}
	s := &tokenService{watchObs: rec, now: func() time.Time { return now }}
	var failSend bool
	send := s.observeLag(func(revocation.Message) error {
		if failSend {
			return errors.New("stream broken")
		}
		return nil
	})
	event := func(agoMS int) revocation.Message {
		return revocation.Message{Event: revocation.Event{Kind: revocation.KindSession, Cursor: fmt.Sprintf("%d-0", 1_000_000-agoMS)}}
	}
	marker := revocation.Message{Event: revocation.Event{Cursor: "999999-0"}}
	for _, m := range []revocation.Message{
		event(60_000), // replay
		marker,        // live from here
		event(5),
		{Event: revocation.Event{Cursor: revocation.Start}, Resync: true},
		event(30_000), // replay after the resynchronisation
		marker,
		event(-20), // a writer whose clock is ahead
	} {
		if err := send(m); err != nil {
			t.Fatal(err)
		}
	}
	failSend = true
	if err := send(event(1)); err == nil {
		t.Fatal("the send's failure was lost")
	}
	want := lagRecorder{5 * time.Millisecond, -20 * time.Millisecond}
	if !reflect.DeepEqual(*rec, want) {
		t.Fatalf("lags %v, want %v", *rec, want)
	}
}
