package passkey_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"

	"github.com/caddymfa/caddy-mfa/authenticators/passkey"
	"github.com/caddymfa/caddy-mfa/internal/webauthntest"
)

func newRP(t *testing.T, base string) *passkey.RelyingParty {
	t.Helper()
	c := &passkey.Config{}
	c.ApplyDefaults()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := passkey.New(c, u, true)
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

var handle = []byte("0123456789abcdef0123456789abcdef")

// register makes a passkey with auth and returns the stored credential.
func register(t *testing.T, rp *passkey.RelyingParty, auth *webauthntest.Authenticator) passkey.Credential {
	t.Helper()
	opts, state, err := rp.BeginRegistration(passkey.User{Handle: handle, Name: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, _, err := auth.Create(opts, webauthntest.Tweak{})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := rp.FinishRegistration(state, handle, resp)
	if err != nil {
		t.Fatalf("registration refused: %v", err)
	}
	return cred
}

func TestNewNeedsBaseURL(t *testing.T) {
	c := &passkey.Config{}
	c.ApplyDefaults()
	if _, err := passkey.New(c, nil, false); !errors.Is(err, passkey.ErrNoBaseURL) {
		t.Fatalf("New without base_url: %v, want ErrNoBaseURL", err)
	}
	if _, err := passkey.New(c, &url.URL{Path: "/x"}, false); !errors.Is(err, passkey.ErrNoBaseURL) {
		t.Fatalf("New with a base_url without host: %v, want ErrNoBaseURL", err)
	}
	rp := newRP(t, "https://app.example.com:8443")
	if rp.ID() != "app.example.com" {
		t.Fatalf("RP ID %q, want the host name of base_url", rp.ID())
	}
}

func TestRegistrationOptionsJSON(t *testing.T) {
	rp := newRP(t, "https://app.example.com")
	opts, _, err := rp.BeginRegistration(passkey.User{Handle: handle, Name: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var o map[string]any
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatal(err)
	}
	if o["attestation"] != "none" && o["attestation"] != nil {
		t.Errorf("attestation %v, want none", o["attestation"])
	}
	sel, _ := o["authenticatorSelection"].(map[string]any)
	if sel["userVerification"] != "preferred" || sel["residentKey"] != "required" {
		t.Errorf("authenticatorSelection %v", sel)
	}
	if rpEnt, _ := o["rp"].(map[string]any); rpEnt["id"] != "app.example.com" {
		t.Errorf("rp %v", o["rp"])
	}
	ch, _ := o["challenge"].(string)
	if len(ch) < 22 || ch[len(ch)-1] == '=' {
		t.Errorf("challenge %q: want base64url without padding", ch)
	}
}

// SECURITY.md P1, P2, P3: what the relying party refuses.
func TestLoginRefusals(t *testing.T) {
	const origin = "https://app.example.com"
	rp := newRP(t, origin)
	auth := webauthntest.New(origin)
	cred := register(t, rp, auth)

	login := func(tw webauthntest.Tweak, creds []passkey.Credential) (passkey.Credential, error) {
		opts, state, err := rp.BeginLogin(creds)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := auth.Get(opts, tw)
		if err != nil {
			t.Fatal(err)
		}
		a, err := passkey.ParseAssertion(resp)
		if err != nil {
			return passkey.Credential{}, err
		}
		return rp.FinishLogin(state, a, handle, []passkey.Credential{cred})
	}
	got, err := login(webauthntest.Tweak{}, []passkey.Credential{cred})
	if err != nil {
		t.Fatalf("sign-in refused: %v", err)
	}
	if got.SignCount != 1 {
		t.Fatalf("counter %d after the first sign-in, want 1", got.SignCount)
	}
	cred = got

	back := uint32(1)
	other := webauthntest.New(origin)
	otherCred := register(t, rp, other)
	_ = otherCred
	for name, tw := range map[string]webauthntest.Tweak{
		"wrong origin":      {Origin: "https://evil.example.com"},
		"wrong rp id hash":  {RPID: "evil.example.com"},
		"another challenge": {Challenge: []byte("0123456789abcdef0123456789abcdef")},
		"another key":       {Key: webauthntest.NewKey()},
		"another user":      {UserHandle: []byte("another-user-handle")},
		"other credential":  {Credential: other.Credentials()[0]},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := login(tw, nil); !errors.Is(err, passkey.ErrInvalid) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
	t.Run("counter backwards", func(t *testing.T) {
		_, err := login(webauthntest.Tweak{Counter: &back}, nil)
		var ce *passkey.CounterError
		if !errors.As(err, &ce) || ce.Stored != 1 || ce.Got != 1 {
			t.Fatalf("error %v, want a CounterError 1 → 1", err)
		}
	})
}

func TestRegistrationRefusals(t *testing.T) {
	const origin = "https://app.example.com"
	rp := newRP(t, origin)
	for name, tw := range map[string]webauthntest.Tweak{
		"wrong origin":      {Origin: "https://evil.example.com"},
		"wrong rp id hash":  {RPID: "evil.example.com"},
		"another challenge": {Challenge: []byte("0123456789abcdef0123456789abcdef")},
	} {
		t.Run(name, func(t *testing.T) {
			opts, state, err := rp.BeginRegistration(passkey.User{Handle: handle, Name: "alice"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, _, err := webauthntest.New(origin).Create(opts, tw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rp.FinishRegistration(state, handle, resp); !errors.Is(err, passkey.ErrInvalid) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
	t.Run("another user handle", func(t *testing.T) {
		opts, state, _ := rp.BeginRegistration(passkey.User{Handle: handle, Name: "alice"}, nil)
		resp, _, _ := webauthntest.New(origin).Create(opts, webauthntest.Tweak{})
		if _, err := rp.FinishRegistration(state, []byte("bob-handle"), resp); !errors.Is(err, passkey.ErrInvalid) {
			t.Fatalf("accepted or wrong error: %v", err)
		}
	})
}
