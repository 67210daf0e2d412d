package redis

// Key schema. Every key starts with "ta:" and carries a Redis Cluster hash tag in braces; keys
// that one script or one MULTI touches always share their tag, hence their slot.
//
// Keys of one subject use the tag store.SubjectTag(tenant, subject). Session ids and jtis embed
// that tag (store.SessionTag, store.SessionOfJTI), so the keys of a session are found from its id
// alone:
//
//	ta:{<tag>}:s:<sid>   HASH    one session; expires at the session's end (PEXPIREAT e)
//	ta:{<tag>}:idx       ZSET    the subject's sessions: member sid, score created unix ms;
//	                             expires with the subject's latest-ending session. Entries
//	                             of ended sessions are removed a bounded number at a time:
//	                             by the subject cut-off (those it ended) and by ListSessions
//	                             (those a cut-off ended, those whose session hash is gone)
//	ta:{<tag>}:j:<jti>   STRING  the access token jti is revoked: "p:<tenant>" while the revocation's
//	                             announcement is pending, then "a:<tenant>" ("1" when written before
//	                             announcements were tracked); expires when the token does
//	ta:{<tag>}:x:<sid>   STRING  tombstone of a session that a revocation ended: "p:<tenant>" or
//	                             "a:<tenant>" as above; expires when the session's access tokens do
//	ta:{<tag>}:cut       STRING  subject cut-off, unix ms; only ever raised; expires after the
//	                             longest TTL it was given
//
// A session hash has short field names:
//
//	t   tenant
//	u   subject
//	a   audience, JSON array
//	sc  scopes, JSON array
//	x   extra claims, raw JSON (absent when the session has none)
//	m   metadata, JSON of store.Metadata
//	c   created, unix ms
//	e   expires, unix ms
//	at  access token TTL, ms
//	g   refresh generation
//	h   refresh token hash, raw 32 bytes
//	r   rotated at, unix ms
//	cb  the x5t#S256 thumbprint of the client certificate the session's tokens are bound to
//	    (absent when they are not bound)
//
// Tenant-wide state has the tag "t:<tenant>":
//
//	ta:{t:<tenant>}:cut  STRING  tenant cut-off, unix ms; same rules as the subject cut-off
//	ta:{t:<tenant>}:ev   STREAM  revocation events (fields k kind, v value, c cut-off unix ms,
//	                             e expires unix ms); trimmed oldest first by age and by e, never
//	                             by length; expires when nothing was appended for the retention
//	ta:{t:<tenant>}:evf  STRING  the stream's floor: entries below it may be missing; same expiry
//
// Records have the tag "r:<kind>" and are the documented exception to "every key expires": they
// live until deleted.
//
//	ta:{r:<kind>}:<id>   STRING  record value
//	ta:{r:<kind>}        ZSET    ids of the kind's records, all with score 0 (ZRANGEBYLEX)
//	ta:{r:<kind>}/<own>  ZSET    ids of the kind's records that owner <own> lists (a tenant's API
//	                             keys), all with score 0; gone with its last member
//
// After the tag, ':' starts a record id and '/' an owner, so the two cannot collide.
//
// Tags are base64url and never contain ':', so the prefixes "t:" and "r:" cannot collide with a
// subject tag.

// recordKeyPrefix starts every record key and record index key.
const recordKeyPrefix = "ta:{r:"

func sessionKey(tag, sessionID string) string { return "ta:{" + tag + "}:s:" + sessionID }

func indexKey(tag string) string { return "ta:{" + tag + "}:idx" }

func revokedKey(tag, jti string) string { return "ta:{" + tag + "}:j:" + jti }

func tombstoneKey(tag, sessionID string) string { return "ta:{" + tag + "}:x:" + sessionID }

func subjectCutoffKey(tag string) string { return "ta:{" + tag + "}:cut" }

func tenantCutoffKey(tenant string) string { return "ta:{t:" + tenant + "}:cut" }

func eventsKey(tenant string) string { return "ta:{t:" + tenant + "}:ev" }

func eventsFloorKey(tenant string) string { return "ta:{t:" + tenant + "}:evf" }

func recordKey(kind, id string) string { return recordKeyPrefix + kind + "}:" + id }

func recordIndexKey(kind string) string { return recordKeyPrefix + kind + "}" }

func ownerIndexKey(kind, owner string) string { return recordKeyPrefix + kind + "}/" + owner }

// Session hash fields.
const (
	fieldTenant     = "t"
	fieldSubject    = "u"
	fieldAudience   = "a"
	fieldScopes     = "sc"
	fieldExtra      = "x"
	fieldMetadata   = "m"
	fieldCreated    = "c"
	fieldExpires    = "e"
	fieldAccessTTL  = "at"
	fieldGeneration = "g"
	fieldHash       = "h"
	fieldRotated    = "r"
	fieldCertBound  = "cb"
)
