package main

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// app is one user's authenticator app.
type app struct {
	user   string
	secret string
	opts   totp.ValidateOpts
	period int64 // seconds
	// next is the first time step this user may still use: the replay
	// guard refuses a code for a step at or before the last one accepted.
	next int64
}

// appPool hands out users whose app can make a code the server will
// accept now. The replay guard accepts one code per time step per user,
// and with the default skew of 1 the server takes the steps before and
// after the current one. A user is used for step max(next, current),
// provided that is at most current+1: a step boundary passing between
// the code and its check then still leaves the code inside the window.
// So each user gives two sign-ins at once on first use, then one per
// period; with too few users, clients wait for the next step (counted in
// the round's waits).
type appPool struct {
	mu    sync.Mutex
	cond  *sync.Cond
	ready appHeap // ordered by next
}

// take removes the user whose next usable step is earliest, waits until
// that step may be used, and returns the user, the code to type and how
// long it waited.
func (p *appPool) take(ctx context.Context) (*app, string, time.Duration, error) {
	p.mu.Lock()
	for p.ready.Len() == 0 {
		// Every user is in a sign-in; there are at least as many users
		// as clients, so one comes back.
		p.cond.Wait()
	}
	a := heap.Pop(&p.ready).(*app)
	p.mu.Unlock()
	var waited time.Duration
	for {
		now := time.Now()
		cur := now.Unix() / a.period
		if a.next <= cur+1 {
			step := max(a.next, cur)
			a.next = step + 1
			code, err := totp.GenerateCodeCustom(a.secret, time.Unix(step*a.period, 0), a.opts)
			if err != nil {
				p.put(a)
				return nil, "", waited, fmt.Errorf("making a code: %w", err)
			}
			return a, code, waited, nil
		}
		// Wait until step a.next-1 begins, then a.next is current+1.
		wait := time.Unix((a.next-1)*a.period, 0).Sub(now) + 10*time.Millisecond
		waited += wait
		select {
		case <-ctx.Done():
			p.put(a)
			return nil, "", waited, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// put returns a user to the pool.
func (p *appPool) put(a *app) {
	p.mu.Lock()
	heap.Push(&p.ready, a)
	p.mu.Unlock()
	p.cond.Signal()
}

type appHeap []*app

func (h appHeap) Len() int           { return len(h) }
func (h appHeap) Less(i, j int) bool { return h[i].next < h[j].next }
func (h appHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *appHeap) Push(x any)        { *h = append(*h, x.(*app)) }
func (h *appHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	*h = old[:len(old)-1]
	return a
}

// enrollApps sets up an authenticator app for users 0..n-1 through the
// admin API (POST /mfa/users/<name>/enroll), with the given number of
// concurrent requests.
func enrollApps(ctx context.Context, client *http.Client, admin string, n, concurrency int, name func(int) string) (*appPool, error) {
	apps := make([]*app, n)
	errs := make(chan error, concurrency)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(concurrency, n) {
		wg.Go(func() {
			for i := range next {
				a, err := enrollApp(ctx, client, admin, name(i))
				if err != nil {
					errs <- err
					return
				}
				apps[i] = a
			}
		})
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		return nil, err
	}
	p := &appPool{ready: apps}
	p.cond = sync.NewCond(&p.mu)
	heap.Init(&p.ready)
	return p, nil
}

// enrollApp enrolls one user and reads the app's settings from the
// otpauth URI, as an authenticator app does.
func enrollApp(ctx context.Context, client *http.Client, admin, user string) (*app, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, admin+"/mfa/users/"+url.PathEscape(user)+"/enroll", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("enrolling %s: %w", user, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("enrolling %s: %w", user, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("enrolling %s: status %d: %.300s", user, resp.StatusCode, raw)
	}
	var ans struct {
		URI string `json:"otpauth_uri"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("enrolling %s: %w", user, err)
	}
	key, err := otp.NewKeyFromURL(ans.URI)
	if err != nil {
		return nil, fmt.Errorf("enrolling %s: reading the otpauth URI: %w", user, err)
	}
	period := int64(key.Period())
	if period <= 0 {
		period = 30
	}
	return &app{
		user:   user,
		secret: key.Secret(),
		opts: totp.ValidateOpts{
			Period:    uint(period),
			Digits:    key.Digits(),
			Algorithm: key.Algorithm(),
		},
		period: period,
		next:   0,
	}, nil
}
