package totp

import "github.com/pquerna/otp"

// algorithms maps configuration names to pquerna/otp algorithms.
var algorithms = map[string]otp.Algorithm{
	"sha1":   otp.AlgorithmSHA1,
	"sha256": otp.AlgorithmSHA256,
	"sha512": otp.AlgorithmSHA512,
}
