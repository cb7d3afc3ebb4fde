package totp

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// RFC seeds: RFC 4226 Appendix D and RFC 6238 Appendix B.
var (
	seedSHA1   = []byte("12345678901234567890")
	seedSHA256 = []byte("12345678901234567890123456789012")
	seedSHA512 = []byte("1234567890123456789012345678901234567890123456789012345678901234")
)

func config(t testing.TB, digits int, alg string, skew int) *Config {
	t.Helper()
	c := &Config{Digits: digits, Algorithm: alg, Skew: skew}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRFC4226Vectors checks RFC 4226 Appendix D: six-digit HOTP over
// counters 0 to 9 with the 20-byte SHA-1 seed.
func TestRFC4226Vectors(t *testing.T) {
	want := []string{
		"755224", "287082", "359152", "969429", "338314",
		"254676", "287922", "162583", "399871", "520489",
	}
	c := config(t, 6, "sha1", -1)
	secret := b32raw(seedSHA1)
	for counter, code := range want {
		t.Run(fmt.Sprint(counter), func(t *testing.T) {
			if ref := refHOTP(seedSHA1, uint64(counter), 6, "sha1"); ref != code {
				t.Fatalf("reference implementation gives %s, RFC says %s", ref, code)
			}
			got, err := c.code(secret, uint64(counter))
			if err != nil || got != code {
				t.Fatalf("code(%d) = %q, %v; want %s", counter, got, err, code)
			}
			// With a 30s period, time counter*30 falls in step counter.
			now := time.Unix(int64(counter)*30, 0)
			step, ok, err := c.Verify(secret, now, code, NoStep)
			if err != nil || !ok || step != int64(counter) {
				t.Fatalf("Verify = %d, %v, %v; want %d, true, nil", step, ok, err, counter)
			}
		})
	}
}

// TestRFC6238Vectors checks every RFC 6238 Appendix B vector at 8 digits,
// and its 6-digit truncation, against both the RFC table and the
// reference implementation.
func TestRFC6238Vectors(t *testing.T) {
	seeds := map[string][]byte{"sha1": seedSHA1, "sha256": seedSHA256, "sha512": seedSHA512}
	vectors := []struct {
		unix                 int64
		sha1, sha256, sha512 string
	}{
		{59, "94287082", "46119246", "90693936"},
		{1111111109, "07081804", "68084774", "25091201"},
		{1111111111, "14050471", "67062674", "99943326"},
		{1234567890, "89005924", "91819424", "93441116"},
		{2000000000, "69279037", "90698825", "38618901"},
		{20000000000, "65353130", "77737706", "47863826"},
	}
	for _, v := range vectors {
		for _, alg := range []string{"sha1", "sha256", "sha512"} {
			want8 := map[string]string{"sha1": v.sha1, "sha256": v.sha256, "sha512": v.sha512}[alg]
			for _, digits := range []int{8, 6} {
				want := want8[8-digits:] // 6 digits: the value mod 10^6
				t.Run(fmt.Sprintf("%d/%s/%d", v.unix, alg, digits), func(t *testing.T) {
					key := seeds[alg]
					if ref := refTOTP(key, v.unix, 30, digits, alg); ref != want {
						t.Fatalf("reference implementation gives %s, RFC says %s", ref, want)
					}
					c := config(t, digits, alg, -1)
					now := time.Unix(v.unix, 0)
					step, ok, err := c.Verify(b32raw(key), now, want, NoStep)
					if err != nil || !ok || step != v.unix/30 {
						t.Fatalf("Verify = %d, %v, %v; want %d, true, nil", step, ok, err, v.unix/30)
					}
					// The wrong algorithm must not accept it.
					other := map[string]string{"sha1": "sha256", "sha256": "sha512", "sha512": "sha1"}[alg]
					if _, ok, _ := config(t, digits, other, -1).Verify(b32raw(key), now, want, NoStep); ok {
						t.Fatalf("%s accepted a %s code", other, alg)
					}
				})
			}
		}
	}
}

// TestSkew checks SECURITY C17: with skew 1, codes one step early or late
// pass and codes two steps away fail; skew 2 widens that by one step.
func TestSkew(t *testing.T) {
	secret := b32raw(seedSHA256)
	now := time.Unix(1_700_000_000, 0)
	step := now.Unix() / 30
	tests := []struct {
		skew   int
		offset int64
		ok     bool
	}{
		{-1, 0, true}, {-1, 1, false}, {-1, -1, false},
		{1, 0, true}, {1, -1, true}, {1, 1, true}, {1, -2, false}, {1, 2, false},
		{2, -2, true}, {2, 2, true}, {2, -3, false}, {2, 3, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("skew %d offset %+d", tt.skew, tt.offset), func(t *testing.T) {
			c := config(t, 6, "sha1", tt.skew)
			code := refHOTP(seedSHA256, uint64(step+tt.offset), 6, "sha1")
			// Make sure the code is not by chance also valid for a step
			// inside the window.
			for d := int64(-c.Skew); d <= int64(c.Skew); d++ {
				if d != tt.offset && refHOTP(seedSHA256, uint64(step+d), 6, "sha1") == code {
					t.Skip("code collision in the window")
				}
			}
			got, ok, err := c.Verify(secret, now, code, NoStep)
			if err != nil || ok != tt.ok {
				t.Fatalf("Verify = %d, %v, %v; want ok %v", got, ok, err, tt.ok)
			}
			if ok && got != step+tt.offset {
				t.Fatalf("matched step %d, want %d", got, step+tt.offset)
			}
		})
	}
}

// TestReplay checks SECURITY C18: once step T is accepted, codes for T and
// earlier steps are refused, later ones in the window still pass.
func TestReplay(t *testing.T) {
	c := config(t, 6, "sha1", 1)
	secret := b32raw(seedSHA1)
	now := time.Unix(1_700_000_000, 0)
	T := c.Step(now)
	code := func(s int64) string { return refHOTP(seedSHA1, uint64(s), 6, "sha1") }

	step, ok, err := c.Verify(secret, now, code(T), NoStep)
	if err != nil || !ok || step != T {
		t.Fatalf("first use: %d, %v, %v", step, ok, err)
	}
	for _, s := range []int64{T, T - 1} {
		if _, ok, _ := c.Verify(secret, now, code(s), T); ok {
			t.Errorf("code of step %+d accepted after step T", s-T)
		}
	}
	// A later step is still fine, and then T+1 itself is spent.
	step, ok, _ = c.Verify(secret, now, code(T+1), T)
	if !ok || step != T+1 {
		t.Fatalf("step T+1 after T: %d, %v", step, ok)
	}
	if _, ok, _ := c.Verify(secret, now.Add(30*time.Second), code(T+1), T+1); ok {
		t.Fatal("step T+1 accepted twice")
	}
	// A stored step in the future (a clock moved back) blocks the window.
	if _, ok, _ := c.Verify(secret, now, code(T), T+5); ok {
		t.Fatal("accepted a step before the stored one")
	}
}

// TestVerifyConcurrentCallers shows Verify is safe for concurrent use;
// atomicity of the step store is the caller's part of the contract.
func TestVerifyConcurrentCallers(t *testing.T) {
	c := config(t, 6, "sha1", 1)
	secret := b32raw(seedSHA1)
	now := time.Unix(1_700_000_000, 0)
	code := refTOTP(seedSHA1, now.Unix(), 30, 6, "sha1")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, ok, err := c.Verify(secret, now, code, NoStep); !ok || err != nil {
				t.Errorf("Verify = %v, %v", ok, err)
			}
		})
	}
	wg.Wait()
}

// TestVerifyInputs checks SECURITY C21: malformed inputs are refused
// without error, even when they contain the valid code.
func TestVerifyInputs(t *testing.T) {
	c := config(t, 6, "sha1", 1)
	secret := b32raw(seedSHA1)
	now := time.Unix(1_700_000_000, 0)
	valid := refTOTP(seedSHA1, now.Unix(), 30, 6, "sha1")
	fullwidth := strings.Map(func(r rune) rune { return r - '0' + '０' }, valid)

	accepted := []string{valid, " " + valid, valid[:3] + " " + valid[3:], valid[:3] + "-" + valid[3:]}
	for _, in := range accepted {
		if _, ok, err := c.Verify(secret, now, in, NoStep); !ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v; want accepted", in, ok, err)
		}
	}
	rejected := map[string]string{
		"empty":         "",
		"spaces":        "      ",
		"short":         valid[:5],
		"long":          valid + "0",
		"fullwidth":     "１２３４５６",
		"fullwidth ok":  fullwidth,
		"plus":          "+123456",
		"plus ok":       "+" + valid,
		"nul":           valid[:3] + "\x00" + valid[3:],
		"trailing nul":  valid + "\x00",
		"tab":           valid[:3] + "\t" + valid[3:],
		"letters":       "12a456",
		"one megabyte":  strings.Repeat(valid, 1<<20/6),
		"eight digits":  refTOTP(seedSHA1, now.Unix(), 30, 8, "sha1"),
		"newline":       valid + "\n",
		"unicode space": valid[:3] + "\u00a0" + valid[3:],
	}
	for name, in := range rejected {
		t.Run(name, func(t *testing.T) {
			if _, ok, err := c.Verify(secret, now, in, NoStep); ok || err != nil {
				t.Fatalf("Verify = %v, %v; want refused without error", ok, err)
			}
		})
	}
}

func TestVerifyBadSecretOrConfig(t *testing.T) {
	c := config(t, 6, "sha1", 1)
	now := time.Unix(1_700_000_000, 0)
	for _, secret := range []string{"", "not base32!", b32raw(make([]byte, 10))} {
		if _, ok, err := c.Verify(secret, now, "123456", NoStep); ok || !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("secret %q: ok %v, err %v; want ErrInvalidSecret", secret, ok, err)
		}
	}
	// Lower case, padding and spaces in the secret are tolerated.
	secret := strings.ToLower(b32raw(seedSHA1)) + "===="
	code := refTOTP(seedSHA1, now.Unix(), 30, 6, "sha1")
	if _, ok, err := c.Verify(secret, now, code, NoStep); !ok || err != nil {
		t.Errorf("lower-case padded secret: %v, %v", ok, err)
	}
	bad := &Config{Digits: 7, Period: caddy.Duration(30 * time.Second), Algorithm: "sha1"}
	if _, ok, err := bad.Verify(b32raw(seedSHA1), now, "1234567", NoStep); ok || err == nil {
		t.Errorf("invalid config: ok %v, err %v; want an error", ok, err)
	}
}

func TestStep(t *testing.T) {
	c := config(t, 6, "sha1", 1)
	for unix, want := range map[int64]int64{0: 0, 29: 0, 30: 1, 59: 1, 1111111109: 37037036, -1: -1, -30: -1, -31: -2} {
		if got := c.Step(time.Unix(unix, 0)); got != want {
			t.Errorf("Step(%d) = %d, want %d", unix, got, want)
		}
	}
	// Before the epoch nothing is accepted.
	if _, ok, _ := c.Verify(b32raw(seedSHA1), time.Unix(-100, 0), "123456", NoStep); ok {
		t.Error("accepted a code before 1970")
	}
}
