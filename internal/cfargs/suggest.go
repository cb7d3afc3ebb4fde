package cfargs

import "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

// Unrecognized returns the error for the current token, a subdirective
// block does not have. When one of known is close to it (a typo, a
// missing or extra letter), the error asks whether that one was meant.
func Unrecognized(d *caddyfile.Dispenser, block string, known ...string) error {
	name := d.Val()
	if s := Suggest(name, known); s != "" {
		return d.Errf("unrecognized %s subdirective %q; did you mean %q?", block, name, s)
	}
	return d.Errf("unrecognized %s subdirective %q", block, name)
}

// Suggest returns the name in known closest to name by edit distance, if
// it is close enough to be a likely typo: at most 2 edits, and fewer
// than a third of name's length, so that short names match nothing and
// a word that merely contains another ("sender", "send") is not taken
// for it.
// Ties go to the first in known.
func Suggest(name string, known []string) string {
	best, bestDist := "", 0
	for _, k := range known {
		dist := editDistance(name, k)
		if dist == 0 || dist > 2 || 3*dist >= len([]rune(name)) {
			continue
		}
		if best == "" || dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in runes,
// with a swap of two adjacent runes counting as one edit (as in "tlls").
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// Three rows of the dynamic-programming table: two back, one back, current.
	prev2 := make([]int, len(t)+1)
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(t)]
}
