package storage

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(new(App))
}

// AppName is the Caddy app that starts what the mfa modules provisioned.
const AppName = "mfa"

// App is the Caddy app "mfa". It has no settings, and a config need not
// name it: a module that keeps state (a store, or a handler whose secret
// key lives in a store) registers with it through OnStart while Caddy
// provisions the config, which loads the app, and the app runs what was
// registered, in order, when Caddy starts the config.
//
// Caddy's validation ('caddy validate', the admin API's config checks)
// provisions every module but starts no app, so it opens no store and
// writes nothing. A store that cannot open (a file where its directory
// should be, a directory locked by another process) still stops Caddy at
// startup, with the error naming the directory.
type App struct {
	mu      sync.Mutex
	starts  []*Start
	started bool
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AppName,
		New: func() caddy.Module { return new(App) },
	}
}

// Start runs every registered start function in the order the modules
// registered (a store before the handler that loaded it) and stops at the
// first error, which makes Caddy give up the config.
func (a *App) Start() error {
	a.mu.Lock()
	starts := a.starts
	a.started = true
	a.mu.Unlock()
	for _, s := range starts {
		if err := s.Run(); err != nil {
			return err
		}
	}
	return nil
}

// Stop does nothing: each module lets go of what it opened in its
// Cleanup, which Caddy calls after Stop, and also after a failed Start.
func (*App) Stop() error { return nil }

// Start is a module's start function, run once it succeeds: by the app
// when Caddy starts the config, or earlier by the module itself on first
// use. Caddy starts apps in no set order, so a request (through the http
// app) or the admin API can reach a module before the mfa app started it.
type Start struct {
	fn      func() error
	done    atomic.Bool
	mu      sync.Mutex // held while fn runs
	stopped bool
}

// errStopped is what Run returns after Stop.
var errStopped = errors.New("stopped")

// Run runs the start function unless it already succeeded. After an error
// the next Run tries again. Once it succeeded, Run costs an atomic load.
// A nil Start has nothing to run.
func (s *Start) Run() error {
	if s == nil || s.done.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done.Load() {
		return nil
	}
	if s.stopped {
		return fmt.Errorf("starting: %w", errStopped)
	}
	if err := s.fn(); err != nil {
		return err
	}
	s.done.Store(true)
	return nil
}

// Done reports whether the start function succeeded; a nil Start is done.
func (s *Start) Done() bool { return s == nil || s.done.Load() }

// Stop keeps the start function from running from now on: a module calls
// it in Cleanup, so nothing opens what it let go of.
func (s *Start) Stop() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
}

// OnStart registers fn with the mfa app of the config ctx belongs to, and
// returns the Start through which the module runs it early if it must.
// fn must be safe to run once more after an error.
//
// A context with no config (a module provisioned on its own, by a command
// such as 'caddy mfa copy-store' or by a test) starts nothing, so there
// OnStart runs fn at once and returns its error. So does a config whose
// mfa app already started.
func OnStart(ctx caddy.Context, fn func() error) (*Start, error) {
	s := &Start{fn: fn}
	app, err := appOf(ctx)
	if err != nil {
		return nil, err
	}
	if app != nil {
		app.mu.Lock()
		started := app.started
		if !started {
			app.starts = append(app.starts, s)
		}
		app.mu.Unlock()
		if !started {
			return s, nil
		}
	}
	if err := s.Run(); err != nil {
		return nil, err
	}
	return s, nil
}

// appOf returns the mfa app of ctx's config, loading it if the config
// does not name it, or nil when ctx has no config.
func appOf(ctx caddy.Context) (app *App, err error) {
	defer func() {
		// caddy.Context.App dereferences the context's config, which a
		// context made by caddy.NewContext outside a config lacks: that
		// nil dereference means "no config". Any other panic is not ours
		// to hide.
		if r := recover(); r != nil {
			if re, ok := r.(runtime.Error); !ok || !strings.Contains(re.Error(), "nil pointer dereference") {
				panic(r)
			}
			app, err = nil, nil
		}
	}()
	v, err := ctx.App(AppName)
	if err != nil {
		return nil, err
	}
	a, ok := v.(*App)
	if !ok {
		return nil, fmt.Errorf("app %s is %T, not the mfa app", AppName, v)
	}
	return a, nil
}

// Interface guards
var (
	_ caddy.App    = (*App)(nil)
	_ caddy.Module = (*App)(nil)
)
