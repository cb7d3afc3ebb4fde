package caddymfa

import (
	"testing"
	"time"
)

// Codes and links count in one lockout: failures of either add up, the
// attempt that locks ends the user's sessions, and once locked neither a
// right code nor a right link is compared.
func TestVerifierCodesAndLinksShareTheLockout(t *testing.T) {
	s := newServices(t)
	v := s.h.verifier
	ctx := t.Context()
	f := &fakeSender{}
	session, _, _ := s.h.sessions.create(ctx, "alice", "alice", methodEmail, "app.test")

	codeSlot := challengeSlot{binding: "flow-code", since: s.clock.now()}
	code := s.issue(t, f, codeSlot, 0).Code
	linkSlot := challengeSlot{binding: "flow-link", since: s.clock.now()}
	msg := s.issue(t, f, linkSlot, time.Minute)
	token := msg.Link[len(msg.Link)-linkTokenLen:]

	if out, _ := v.factor(ctx, "alice", "", codeSlot, methodEmail, "000000"); out.ok {
		t.Fatal("a wrong code passed")
	}
	if out, _ := v.link(ctx, msg.ChallengeID, flipLast(token), "", 0, false); out.ok || out.user != "alice" {
		t.Fatalf("a wrong token: %+v", out)
	}
	if err := v.unreadable(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
	// Three failures; the fourth attempt locks, whatever it carries.
	if out, _ := v.factor(ctx, "alice", "", codeSlot, methodEmail, code); out.ok {
		t.Fatal("the right code passed on the attempt that locks")
	}
	if locked, _ := s.h.lockout.locked(ctx, "alice", ""); !locked {
		t.Fatal("not locked")
	}
	if _, ok := s.h.sessions.check(ctx, session, "alice", "app.test"); ok {
		t.Fatal("the lock left a session")
	}
	if out, _ := v.link(ctx, msg.ChallengeID, token, "", 0, true); out.ok {
		t.Fatal("the right link passed while locked")
	}
}

// A success clears the failures; a link confirmed elsewhere is picked up
// once, and not by a user locked meanwhile.
func TestVerifierSuccessAndPickUp(t *testing.T) {
	s := newServices(t)
	v := s.h.verifier
	ctx := t.Context()
	f := &fakeSender{}
	slot := challengeSlot{binding: "flow", since: s.clock.now()}
	code := s.issue(t, f, slot, 0).Code
	v.factor(ctx, "alice", "", slot, methodEmail, "000000")
	if out, err := v.factor(ctx, "alice", "", slot, methodEmail, code); !out.ok || err != nil {
		t.Fatalf("right code: %+v %v", out, err)
	}
	if rep, _ := s.h.lockout.report(ctx, "alice"); rep.Failures != 0 {
		t.Fatalf("%d failures after a success", rep.Failures)
	}

	p := principal{firstFactor: "alice", user: "alice"}
	for i, lockFirst := range []bool{false, true} {
		slot := challengeSlot{binding: "link-" + string(rune('a'+i)), since: s.clock.now()}
		msg := s.issue(t, f, slot, time.Minute)
		token := msg.Link[len(msg.Link)-linkTokenLen:]
		if out, _ := v.link(ctx, msg.ChallengeID, token, "", matchOf(t, v.challenges, msg.ChallengeID), false); !out.ok {
			t.Fatal("confirming elsewhere failed")
		}
		if lockFirst {
			for range 4 {
				s.h.lockout.count(ctx, "alice", "")
			}
		}
		_, ok, _ := v.pickUp(ctx, p, "", slot)
		if ok == lockFirst {
			t.Errorf("locked %v: picked up %v", lockFirst, ok)
		}
	}
}
