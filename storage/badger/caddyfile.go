package badger

import (
	"math"
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	storage badger [<dir>] {
//		min_free <size>|off
//		memtable_size <size>
//		block_cache_size <size>|off
//		index_cache_size <size>
//		value_log_file_size <size>
//		value_threshold <size>
//		compactors <n>
//		level_zero_tables <n>
//		compression none|snappy|zstd
//	}
//
// The dispenser is positioned at the token "badger". With no directory the
// store lives in the "mfa" folder of Caddy's data directory. Sizes are
// written such as 64MiB or 1GB.
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume module name
	if d.NextArg() {
		s.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if !slices.Contains(subdirectives, name) {
			return cfargs.Unrecognized(d, "storage badger", subdirectives...)
		}
		if seen[name] {
			return d.Errf("%s given twice", name)
		}
		seen[name] = true
		if !d.NextArg() {
			return d.ArgErr()
		}
		var err error
		switch name {
		case "min_free":
			s.MinFree, err = parseSize(d, name, true)
		case "memtable_size":
			s.MemtableSize, err = parseSize(d, name, false)
		case "block_cache_size":
			s.BlockCacheSize, err = parseSize(d, name, true)
			if s.BlockCacheSize == -1 {
				s.BlockCacheSize = 0
			}
		case "index_cache_size":
			s.IndexCacheSize, err = parseSize(d, name, false)
		case "value_log_file_size":
			s.ValueLogFileSize, err = parseSize(d, name, false)
		case "value_threshold":
			s.ValueThreshold, err = parseSize(d, name, false)
		case "compactors":
			n, perr := strconv.Atoi(d.Val())
			if perr != nil || n < 2 {
				return d.Errf("compactors: %q is not a number of at least 2", d.Val())
			}
			s.Compactors = n
		case "level_zero_tables":
			n, perr := strconv.Atoi(d.Val())
			if perr != nil || n < 1 || n > maxLevelZeroTables {
				return d.Errf("level_zero_tables: %q is not a number from 1 to %d", d.Val(), maxLevelZeroTables)
			}
			s.LevelZeroTables = n
		case "compression":
			if _, ok := compressions[d.Val()]; !ok {
				return d.Errf("compression: %q is not none, snappy or zstd", d.Val())
			}
			s.Compression = d.Val()
		}
		if err != nil {
			return err
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	if _, err := s.tuning(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// subdirectives are those of the storage badger block.
var subdirectives = []string{"min_free", "memtable_size", "block_cache_size", "index_cache_size",
	"value_log_file_size", "value_threshold", "compactors", "level_zero_tables", "compression"}

// parseSize reads the size argument of the subdirective name; with
// offOK, "off" is -1.
func parseSize(d *caddyfile.Dispenser, name string, offOK bool) (int64, error) {
	if offOK && d.Val() == "off" {
		return -1, nil
	}
	n, err := humanize.ParseBytes(d.Val())
	if err != nil || n == 0 || n > math.MaxInt64 {
		if offOK {
			return 0, d.Errf("%s: %q is not a size such as 64MiB, or off", name, d.Val())
		}
		return 0, d.Errf("%s: %q is not a size such as 4MiB", name, d.Val())
	}
	return int64(n), nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Store)(nil)
