package revocation

import "testing"

func TestDeletedIncarnation(t *testing.T) {
	tests := []struct {
		name    string
		ev      Event
		wantInc string
		wantOK  bool
	}{
		{"a tenant's deletion", Event{Kind: KindTenantCutoff, Value: TenantDeleted("inc1")}, "inc1", true},
		{"the deletion of a tenant recorded without an incarnation", Event{Kind: KindTenantCutoff, Value: TenantDeleted("")}, "", true},
		{"log everyone out", Event{Kind: KindTenantCutoff}, "", false},
		{"a subject named like a deletion", Event{Kind: KindSubjectCutoff, Value: TenantDeleted("inc1")}, "", false},
		{"a session", Event{Kind: KindSession, Value: "deleted:x"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc, ok := tt.ev.DeletedIncarnation()
			if inc != tt.wantInc || ok != tt.wantOK {
				t.Errorf("DeletedIncarnation() = %q, %v; want %q, %v", inc, ok, tt.wantInc, tt.wantOK)
			}
		})
	}
}
