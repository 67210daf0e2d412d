package telemetry

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// namespace prefixes every metric of the service.
const namespace = "tokenauthority"

// Sources are what the metrics read at scrape time.
type Sources struct {
	// Watches returns the number of open revocation streams (revocation.Hub.Watches); the gauge
	// is not registered when nil.
	Watches func() int
	// SigningKeyAges returns, per algorithm, how long the oldest cached signer has been signing
	// (keys.Manager.SigningKeyAges). It must not call the store: it runs on every scrape. The
	// gauge is not registered when nil.
	SigningKeyAges func() map[keys.Algorithm]time.Duration
	// SealedRecords returns the key sets by the key-encryption key that seals them, as the last
	// check or re-seal pass counted them (keys.Manager.SealedRecords), and false before the first.
	// It must not call the store. The gauge is not registered when nil.
	SealedRecords func() (keys.SealStats, bool)
}

// Metrics are the service's own metrics. Their methods are safe for concurrent use and allocate
// nothing: every series of the hot paths is resolved when the metrics are made.
type Metrics struct {
	issued      prometheus.Counter
	refreshes   [store.RotateReuse + 1]prometheus.Counter // by store.RotateOutcome
	reuse       prometheus.Counter
	revocations [revocation.KindKeyPublished + 1]prometheus.Counter // by revocation.Kind; 0 unused
	verified    []prometheus.Counter                                // by token.Reason; ReasonNone is "active"
	lag         prometheus.Histogram
	store       *storeMetrics
}

var _ token.Observer = (*Metrics)(nil)

// refreshOutcomes names the values of store.RotateOutcome.
var refreshOutcomes = [...]string{
	store.RotateInvalid: "invalid",
	store.Rotated:       "rotated",
	store.RotateRetry:   "retry",
	store.RotateReuse:   "reuse",
}

// kindNames names the values of revocation.Kind, as the API's RevocationKind does.
var kindNames = [...]string{
	revocation.KindToken:         "token",
	revocation.KindSession:       "session",
	revocation.KindSubjectCutoff: "subject_cutoff",
	revocation.KindTenantCutoff:  "tenant_cutoff",
	revocation.KindKeyWithdrawn:  "key_withdrawn",
	revocation.KindKeyPublished:  "key_published",
}

// Buckets of the latency histograms, in seconds.
var (
	// storeBuckets span a local Redis round trip to the client's timeouts (500 ms reads, 1 s dials).
	storeBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	// lagBuckets span a notified delivery (milliseconds) to one found by the once-a-second poll
	// after a lost notification, and beyond.
	lagBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
)

// NewMetrics makes the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer, src Sources) (*Metrics, error) {
	m := &Metrics{
		issued: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "tokens_issued_total",
			Help: "Sessions opened (token pairs issued by IssueToken).",
		}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "refresh_reuse_detected_total",
			Help: "Refresh tokens presented again after their rotation (outside the grace window); each ended its session.",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "revocation_lag_seconds", Buckets: lagBuckets,
			Help: "Time from a revocation event's append to its send to a live watcher (replays of past events excluded).",
		}),
	}
	refreshes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "refreshes_total",
		Help: "Refresh tokens presented, by outcome: rotated, retry (within the grace window), reuse, invalid.",
	}, []string{"outcome"})
	for o, name := range refreshOutcomes {
		m.refreshes[o] = refreshes.WithLabelValues(name)
	}
	revocations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "revocations_total",
		Help: "Revocations recorded by this replica, by kind.",
	}, []string{"kind"})
	for k, name := range kindNames {
		if name != "" {
			m.revocations[k] = revocations.WithLabelValues(name)
		}
	}
	verifications := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "verifications_total",
		Help: "VerifyToken answers, by reason: active, or the reason the token is inactive.",
	}, []string{"reason"})
	reasons := token.Reasons()
	m.verified = make([]prometheus.Counter, len(reasons)+1)
	m.verified[token.ReasonNone] = verifications.WithLabelValues("active")
	for _, r := range reasons {
		m.verified[r] = verifications.WithLabelValues(r.String())
	}
	m.store = newStoreMetrics()

	collectors := []prometheus.Collector{m.issued, refreshes, m.reuse, revocations, verifications, m.lag,
		m.store.duration, m.store.errors}
	if src.Watches != nil {
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "revocation_watchers",
			Help: "Open WatchRevocations streams on this replica.",
		}, func() float64 { return float64(src.Watches()) }))
	}
	if src.SigningKeyAges != nil {
		collectors = append(collectors, &keyAgeCollector{ages: src.SigningKeyAges})
	}
	if src.SealedRecords != nil {
		collectors = append(collectors, &sealedCollector{stats: src.SealedRecords})
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// Issued counts a session opened.
func (m *Metrics) Issued() { m.issued.Inc() }

// Refreshed counts a refresh by outcome; reuse is also counted on its own.
func (m *Metrics) Refreshed(o store.RotateOutcome) {
	if o < 0 || int(o) >= len(m.refreshes) {
		return
	}
	m.refreshes[o].Inc()
	if o == store.RotateReuse {
		m.reuse.Inc()
	}
}

// Verified counts a verification answer by reason (token.ReasonNone: active).
func (m *Metrics) Verified(r token.Reason) {
	if r < 0 || int(r) >= len(m.verified) {
		return
	}
	m.verified[r].Inc()
}

// Revoked counts a revocation by kind.
func (m *Metrics) Revoked(k revocation.Kind) {
	if !k.Valid() {
		return
	}
	m.revocations[k].Inc()
}

// RevocationDelivered records how long after its append a revocation event reached a watcher.
func (m *Metrics) RevocationDelivered(lag time.Duration) {
	m.lag.Observe(max(lag, 0).Seconds())
}

// keyAgeCollector reports the signing-key age gauge, computed at scrape time.
type keyAgeCollector struct {
	ages func() map[keys.Algorithm]time.Duration
}

var keyAgeDesc = prometheus.NewDesc(namespace+"_signing_key_age_seconds",
	"Seconds since the current signing key started signing, the oldest over the tenants whose keys this replica has cached, by algorithm.",
	[]string{"algorithm"}, nil)

func (c *keyAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keyAgeDesc }

func (c *keyAgeCollector) Collect(ch chan<- prometheus.Metric) {
	for alg, age := range c.ages() {
		ch <- prometheus.MustNewConstMetric(keyAgeDesc, prometheus.GaugeValue, age.Seconds(), string(alg))
	}
}

// sealedCollector reports the sealed key sets by key-encryption key, as the last pass counted
// them; nothing before the first.
type sealedCollector struct {
	stats func() (keys.SealStats, bool)
}

var sealedDesc = prometheus.NewDesc(namespace+"_sealed_records",
	"Stored key sets by the key-encryption key that seals them, as this replica's last check or re-seal pass counted them: "+
		"current, previous (re-sealed in the background; 0 means the previous keys can go), unknown (no configured key opens them).",
	[]string{"key"}, nil)

func (c *sealedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sealedDesc }

func (c *sealedCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.stats()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(sealedDesc, prometheus.GaugeValue, float64(st.Current), "current")
	ch <- prometheus.MustNewConstMetric(sealedDesc, prometheus.GaugeValue, float64(st.Previous), "previous")
	ch <- prometheus.MustNewConstMetric(sealedDesc, prometheus.GaugeValue, float64(st.Unknown), "unknown")
}
