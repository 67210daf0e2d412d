package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// Tenants is what the lifecycle needs of the tenant service.
type Tenants interface {
	Tenant(ctx context.Context, id string) (*tenant.Tenant, error)
	CreateTenant(ctx context.Context, t *tenant.Tenant) error
	// DeleteTenant deletes the tenant with its API keys and principals.
	DeleteTenant(ctx context.Context, id string) error
	CreateAPIKey(ctx context.Context, tenantID, name string, roles []tenant.Role) (*tenant.APIKey, string, error)
	RegisterAPIKey(ctx context.Context, tenantID, name string, roles []tenant.Role, value string) (*tenant.APIKey, error)
}

// Keys is what the lifecycle needs of the key manager.
type Keys interface {
	// Ensure creates the tenant's signing keys unless it has some.
	Ensure(ctx context.Context, tenant string, alg keys.Algorithm) error
	Delete(ctx context.Context, tenant string) error
}

// Tokens is what the lifecycle needs of the token service.
type Tokens interface {
	// EndTenant cuts off every session of this incarnation of the tenant and announces it.
	EndTenant(ctx context.Context, t *tenant.Tenant) (time.Time, error)
}

// Config is what a Service works with.
type Config struct {
	Tenants Tenants
	Keys    Keys
	Tokens  Tokens
	// Audit receives tenant_created and tenant_deleted; nil discards them.
	Audit *audit.Writer
}

// Service creates and deletes tenants with everything that belongs to them.
type Service struct {
	tenants Tenants
	keys    Keys
	tokens  Tokens
	audit   *audit.Writer
}

// New returns a Service.
func New(cfg Config) *Service {
	return &Service{tenants: cfg.Tenants, keys: cfg.Keys, tokens: cfg.Tokens, audit: cfg.Audit}
}

// FirstKeyName names the admin API key that Create makes with a tenant.
const FirstKeyName = "admin (created with the tenant)"

// CreateOption adjusts Create for the development bootstrap; the admin service passes none.
type CreateOption func(*createOptions)

type createOptions struct {
	// key, when not nil, is registered as the first API key instead of a new admin key.
	key *registeredKey
	// completeExisting completes an existing tenant of the id instead of refusing it.
	completeExisting bool
}

type registeredKey struct {
	name  string
	roles []tenant.Role
	value string
}

// WithAPIKey makes the tenant's first API key the given value, with name and roles, instead of a
// new admin key: the development key that the data directory keeps. Create returns value as the
// key's value.
func WithAPIKey(name string, roles []tenant.Role, value string) CreateOption {
	return func(o *createOptions) { o.key = &registeredKey{name: name, roles: roles, value: value} }
}

// CompleteExisting makes Create complete a tenant that already exists under the id rather than
// fail with store.ErrExists: it ensures the stored tenant's signing keys and adds the first API
// key, and returns the stored tenant. What existed before is never undone, so a failure leaves
// the tenant as it was or with its keys: a run again completes it. This is the development
// bootstrap's rule, which must survive a restart between any two of its steps.
func CompleteExisting() CreateOption {
	return func(o *createOptions) { o.completeExisting = true }
}

// Create makes tenant t, its signing keys (of t.Algorithm) and its first API key, an admin key
// unless WithAPIKey says otherwise, and returns the tenant and the key's value. It is
// all-or-nothing: when a step fails, whatever Create made is removed again, even if ctx is
// cancelled meanwhile, so that the same call can be retried. An error of the tenant's own
// creation (tenant.ErrInvalid, store.ErrExists) is returned as it is.
func (s *Service) Create(ctx context.Context, t *tenant.Tenant, opts ...CreateOption) (*tenant.Tenant, string, error) {
	var o createOptions
	for _, opt := range opts {
		opt(&o)
	}
	made := true
	err := s.tenants.CreateTenant(ctx, t)
	if err != nil {
		if !o.completeExisting || !errors.Is(err, store.ErrExists) {
			return nil, "", err
		}
		if t, err = s.tenants.Tenant(ctx, t.ID); err != nil {
			return nil, "", fmt.Errorf("read the existing tenant: %w", err)
		}
		made = false
	}
	// undo removes what this call made; a tenant it did not make is left as it was.
	undo := func(err error) error {
		if !made {
			return err
		}
		// A caller gone mid-way must not leave half a tenant, and the step that failed may have
		// spent the call's store budget.
		bg := store.Detached(ctx)
		var undoErrs []error
		if uerr := s.keys.Delete(bg, t.ID); uerr != nil {
			undoErrs = append(undoErrs, uerr)
		}
		// The tenant's deletion takes its API keys with it.
		if uerr := s.tenants.DeleteTenant(bg, t.ID); uerr != nil && !errors.Is(uerr, tenant.ErrNotFound) {
			undoErrs = append(undoErrs, uerr)
		}
		if len(undoErrs) > 0 {
			return fmt.Errorf("%w; removing the partly created tenant %q also failed: %w", err, t.ID, errors.Join(undoErrs...))
		}
		return err
	}
	if made {
		// No tenant of this id existed, so any key set of the id is what an earlier tenant's
		// removal left behind (an undo that failed half-way): never the new tenant's keys.
		if err := s.keys.Delete(ctx, t.ID); err != nil {
			return nil, "", undo(fmt.Errorf("remove the signing keys left by an earlier tenant %q: %w", t.ID, err))
		}
	}
	if err := s.keys.Ensure(ctx, t.ID, t.Algorithm); err != nil {
		return nil, "", undo(fmt.Errorf("create the tenant's signing keys: %w", err))
	}
	value, err := s.firstKey(ctx, t.ID, o.key)
	if err != nil {
		return nil, "", undo(fmt.Errorf("create the tenant's first API key: %w", err))
	}
	if made {
		s.audit.Emit(ctx, audit.Event{Kind: audit.TenantCreated, Tenant: t.ID})
	}
	return t, value, nil
}

// firstKey makes the tenant's first API key and returns its value.
func (s *Service) firstKey(ctx context.Context, tenantID string, k *registeredKey) (string, error) {
	if k == nil {
		_, value, err := s.tenants.CreateAPIKey(ctx, tenantID, FirstKeyName, []tenant.Role{tenant.RoleAdmin})
		return value, err
	}
	if _, err := s.tenants.RegisterAPIKey(ctx, tenantID, k.name, k.roles, k.value); err != nil {
		return "", err
	}
	return k.value, nil
}

// Delete deletes tenant id: it cuts off the tenant's sessions, then removes its signing keys,
// then deletes the tenant with its API keys and principals. The cut-off comes first, so that a
// tenant created again under the same id never revives a session, and its event ends the
// revocation streams of this incarnation on every replica before any event of the next one. The
// tenant's record goes last: a Delete that failed part-way leaves the tenant there, and a retry
// finds it and does every step again (each is idempotent), so that nothing of a deleted tenant is
// left behind. An unknown id, or a tenant that a concurrent Delete removed first, is
// tenant.ErrNotFound; tenant_deleted is audited once, by the Delete that removed the record.
func (s *Service) Delete(ctx context.Context, id string) error {
	t, err := s.tenants.Tenant(ctx, id)
	if err != nil {
		return err
	}
	if _, err := s.tokens.EndTenant(ctx, t); err != nil {
		return fmt.Errorf("cut off the sessions of tenant %q: %w", t.ID, err)
	}
	if err := s.keys.Delete(ctx, t.ID); err != nil {
		return fmt.Errorf("delete the signing keys of tenant %q: %w", t.ID, err)
	}
	if err := s.tenants.DeleteTenant(ctx, t.ID); err != nil {
		if errors.Is(err, tenant.ErrNotFound) {
			return err
		}
		return fmt.Errorf("delete tenant %q: %w", t.ID, err)
	}
	s.audit.Emit(ctx, audit.Event{Kind: audit.TenantDeleted, Tenant: t.ID})
	return nil
}
