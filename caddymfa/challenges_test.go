package caddymfa

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/storage"
)

// A code matches only its own slot and only once; the attempts are
// counted before the compare, and the challenge dies at max_attempts.
func TestChallengesVerifyCode(t *testing.T) {
	s := newServices(t)
	c, limits := s.h.challenges, s.h.Email.Limits
	ctx := t.Context()
	a := challengeSlot{binding: "flow-a", since: s.clock.now()}
	b := challengeSlot{binding: "flow-b", since: s.clock.now()}
	f := &fakeSender{}
	code := s.issue(t, f, a, 0).Code
	if out, _ := c.verifyCode(ctx, b, "alice", methodEmail, code, limits, false); out.ok {
		t.Fatal("a code of slot a matched slot b")
	}
	if out, _ := c.verifyCode(ctx, a, "bob", methodEmail, code, limits, false); out.ok {
		t.Fatal("alice's code matched for bob")
	}
	if out, _ := c.verifyCode(ctx, a, "alice", methodEmail, code, limits, true); out.ok || out.attemptsLeft != 1 {
		t.Fatalf("a locked user's code: %+v, want counted and refused", out)
	}
	ch, _ := c.load(ctx, c.id(a))
	if ch.Attempts != 2 || ch.State != statePending {
		t.Fatalf("after two refusals: %d attempts, %s", ch.Attempts, ch.State)
	}
	out, err := c.verifyCode(ctx, a, "alice", methodEmail, code, limits, false)
	if err != nil || !out.ok || out.method != methodEmail {
		t.Fatalf("right code, last attempt: %+v %v", out, err)
	}
	if out, _ := c.verifyCode(ctx, a, "alice", methodEmail, code, limits, false); out.ok {
		t.Fatal("a used code matched again")
	}
	if _, err := c.issue(ctx, sendRequest{slot: a, user: "alice", sender: f, limits: limits, dest: "alice@example.com", wait: true}); !errors.Is(err, errTooManySends) {
		t.Fatalf("issuing on a used challenge: %v", err)
	}
}

// A new code replaces the old one and keeps the attempts; the code
// expires with code_ttl.
func TestChallengesIssueReplacesTheCode(t *testing.T) {
	s := newServices(t)
	c, limits := s.h.challenges, s.h.Email.Limits
	ctx := t.Context()
	slot := challengeSlot{binding: "flow", since: s.clock.now()}
	f := &fakeSender{}
	first := s.issue(t, f, slot, 0).Code
	c.verifyCode(ctx, slot, "alice", methodEmail, "000000", limits, false)
	second := s.issue(t, f, slot, 0).Code
	ch, _ := c.load(ctx, c.id(slot))
	if ch.Attempts != 1 || ch.Sends != 2 {
		t.Fatalf("after a resend: %d attempts, %d sends", ch.Attempts, ch.Sends)
	}
	if first != second {
		if out, _ := c.verifyCode(ctx, slot, "alice", methodEmail, first, limits, false); out.ok {
			t.Fatal("the replaced code matched")
		}
	}
	s.clock.add(10 * time.Minute)
	if out, _ := c.verifyCode(ctx, slot, "alice", methodEmail, second, limits, false); out.ok {
		t.Fatal("an expired code matched")
	}
}

// A link confirmed elsewhere becomes verified, and the flow picks it up
// once; confirmed by its own browser it is used at once; a delivery that
// fails for good kills the challenge.
func TestChallengesLinksAndPickUp(t *testing.T) {
	s := newServices(t)
	c, limits := s.h.challenges, s.h.Email.Limits
	ctx := t.Context()
	f := &fakeSender{}

	elsewhere := challengeSlot{binding: "flow-1", since: s.clock.now()}
	msg := s.issue(t, f, elsewhere, time.Minute)
	token := msg.Link[len(msg.Link)-linkTokenLen:]
	cid, ok := linkChallenge(token)
	if !ok || cid != c.id(elsewhere) || msg.ChallengeID != cid {
		t.Fatalf("the token names %q, want %q", cid, c.id(elsewhere))
	}
	if m, ok, _ := c.pickUp(ctx, elsewhere, "alice", false); ok {
		t.Fatalf("picked up a pending link: %s", m)
	}
	if ok, err := c.verifyLink(ctx, cid, "alice", token, matchOf(t, c, cid), limits, false, false); !ok || err != nil {
		t.Fatalf("confirming elsewhere: %v %v", ok, err)
	}
	if ok, _ := c.verifyLink(ctx, cid, "alice", token, matchOf(t, c, cid), limits, false, false); ok {
		t.Fatal("a link worked twice")
	}
	if m, ok, _ := c.pickUp(ctx, elsewhere, "alice", false); !ok || m != methodEmail {
		t.Fatalf("pick up: %q %v", m, ok)
	}
	if _, ok, _ := c.pickUp(ctx, elsewhere, "alice", false); ok {
		t.Fatal("picked up twice")
	}

	here := challengeSlot{binding: "flow-2", since: s.clock.now()}
	msg = s.issue(t, f, here, time.Minute)
	token = msg.Link[len(msg.Link)-linkTokenLen:]
	cid, _ = linkChallenge(token)
	if ok, _ := c.verifyLink(ctx, cid, "alice", token, 0, limits, true, false); !ok {
		t.Fatal("confirming in the flow's browser failed")
	}
	if _, ok, _ := c.pickUp(ctx, here, "alice", false); ok {
		t.Fatal("a link used at once was picked up again")
	}

	failed := challengeSlot{binding: "flow-3", since: s.clock.now()}
	code := s.issue(t, f, failed, 0).Code
	c.markFailed(ctx, c.id(failed))
	if out, _ := c.verifyCode(ctx, failed, "alice", methodEmail, code, limits, false); out.ok {
		t.Fatal("the code of an undelivered challenge matched")
	}
}

// matchOf is the number a link of challenge cid needs on another device.
func matchOf(t testing.TB, c *challenges, cid string) int {
	t.Helper()
	ch, err := c.load(t.Context(), cid)
	if err != nil || ch == nil {
		t.Fatalf("loading challenge: %v", err)
	}
	return ch.Match
}

// verifyCode makes one attempt of a code at the slot's challenge alone,
// as verifier.channelCode does inside its store operation, for the tests
// of the challenge rules; locked stands for the lockout's answer.
func (c *challenges) verifyCode(ctx context.Context, s challengeSlot, user, method, input string, limits authenticators.Limits, locked bool) (verifyOutcome, error) {
	var out verifyOutcome
	err := c.store.Update(ctx, keyChallenge+c.id(s), func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		ch, err := c.decode(cur, found)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		change, o, _, err := c.codeAttempt(ch, cur, s, user, method, input, limits, locked, c.now())
		out = o
		return change.Value, change.ExpiresAt, change.Op, err
	})
	return out, err
}
