package redis

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddymfa/caddy-mfa/storage"
)

func init() {
	caddy.RegisterModule(new(Store))
}

const (
	// defaultURL is the server used when neither a URL nor Sentinel is
	// configured.
	defaultURL = "redis://127.0.0.1:6379"
	// defaultKeyPrefix starts every key the store writes.
	defaultKeyPrefix = "mfa/"
	// defaultTimeout bounds dialing, each read and each write.
	defaultTimeout = 2 * time.Second
)

// Store keeps caddy-mfa's state in Redis, so several Caddy nodes share one
// state. The module value itself implements storage.Store.
type Store struct {
	// URL names the server: redis://[user[:password]@]host[:port][/db],
	// or rediss://... for TLS. Placeholders such as {env.REDIS_URL} are
	// resolved at provision. Default: redis://127.0.0.1:6379, unless
	// Sentinel is set (the two are exclusive).
	URL string `json:"url,omitempty"`

	// Username is the ACL user (Redis 6 and later). It overrides a user
	// in URL. Placeholders are resolved at provision.
	Username string `json:"username,omitempty"`

	// Password authenticates the user (or, without a user, the server's
	// requirepass). It overrides a password in URL. Use a placeholder
	// such as {env.REDIS_PASSWORD} rather than writing it in the config.
	Password string `json:"password,omitempty"`

	// DB is the database number. Default: the number in URL, else 0.
	// Setting both to different numbers is an error.
	DB int `json:"db,omitempty"`

	// CAFile is a PEM file of the certificate authorities that sign the
	// server's certificate. It turns TLS on (also for Sentinel). Default:
	// the system's roots, and TLS only with a rediss:// URL. Placeholders
	// are resolved at provision.
	CAFile string `json:"ca_file,omitempty"`

	// Sentinel connects through Redis Sentinel, which names the current
	// master. Exclusive with URL. Placeholders in the master name and the
	// addresses are resolved at provision.
	Sentinel *Sentinel `json:"sentinel,omitempty"`

	// KeyPrefix starts every key the store writes, so several sites or
	// clusters can share one database without seeing each other's state.
	// Placeholders are resolved at provision. Default: "mfa/".
	KeyPrefix string `json:"key_prefix,omitempty"`

	// Timeout bounds dialing the server and each read and write, so a
	// Redis that stops answering fails requests (closed) instead of
	// hanging them. Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// PoolSize is the most connections kept to the server. Default: ten
	// per CPU (go-redis' default).
	PoolSize int `json:"pool_size,omitempty"`

	// WaitReplicas makes durable writes (enrollments) wait until this
	// many replicas have acknowledged them (Redis WAIT, bounded by
	// Timeout); fewer acknowledgements make the write fail. Default 0: a
	// durable write is acknowledged by the master alone, and is as
	// durable as its appendonly/appendfsync settings make it.
	WaitReplicas int `json:"wait_replicas,omitempty"`

	// mu guards client: methods hold it for reading while they use the
	// client, Cleanup for writing while it lets go of it.
	mu       sync.RWMutex
	client   *client // nil before Provision and after Cleanup
	poolKey  string
	prefix   string // the resolved key prefix
	location string
	timeout  time.Duration

	logger *zap.Logger
	now    func() time.Time // the clock expiry is checked against
}

// Sentinel names a master monitored by Redis Sentinel.
type Sentinel struct {
	// MasterName is the name the sentinels monitor the master under.
	MasterName string `json:"master_name,omitempty"`
	// Addresses are host:port of one or more sentinels.
	Addresses []string `json:"addresses,omitempty"`
}

// clients holds one go-redis client per distinct configuration for the
// whole process: a config reload provisions the new handler before the old
// one is cleaned up, and both can use the one connection pool.
var clients = caddy.NewUsagePool()

// client is the pooled value: a go-redis client and its connection pool.
type client struct {
	rdb   *goredis.Client
	locks *keyLocks
}

// Destruct closes the client's connections. The usage pool calls it when
// the last Store using the client is cleaned up.
func (c *client) Destruct() error {
	if err := c.rdb.Close(); err != nil {
		return fmt.Errorf("closing redis client: %w", err)
	}
	return nil
}

// CaddyModule returns the Caddy module information.
func (*Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  storage.Namespace + ".redis",
		New: func() caddy.Module { return new(Store) },
	}
}

// config is the resolved configuration: placeholders replaced, URL parsed,
// defaults applied. It is also the usage pool's key (hashed, since it
// holds the password).
type config struct {
	Addr         string        `json:"addr,omitempty"`
	MasterName   string        `json:"master_name,omitempty"`
	Sentinels    []string      `json:"sentinels,omitempty"`
	Username     string        `json:"username,omitempty"`
	Password     string        `json:"password,omitempty"`
	DB           int           `json:"db"`
	TLS          bool          `json:"tls,omitempty"`
	CAFile       string        `json:"ca_file,omitempty"`
	CAPEM        []byte        `json:"ca_pem,omitempty"` // read at provision, so a reload sees a changed file
	Timeout      time.Duration `json:"timeout"`
	PoolSize     int           `json:"pool_size,omitempty"`
	WaitReplicas int           `json:"wait_replicas,omitempty"`

	// prefix is the key prefix: not part of the pool key, since stores
	// with different prefixes share a client.
	prefix string
}

// Provision resolves the configuration and connects, or takes a reference
// to the client another Store in this process made for the same
// configuration. It does not wait for the server: a Redis that is down at
// startup makes requests fail closed until it is up, like one that goes
// down later.
func (s *Store) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	routeClientLog.Do(func() {
		// Caddy's default logger outlives every config; a Store's logger
		// belongs to the config that provisioned it.
		goredis.SetLogger(clientLogger{caddy.Log().Named("mfa.storage.redis.client").WithOptions(zap.WithCaller(false))})
	})
	if s.now == nil {
		s.now = time.Now
	}
	cfg, err := s.resolve()
	if err != nil {
		return err
	}
	key, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("redis store: %w", err)
	}
	sum := sha256.Sum256(key)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return fmt.Errorf("redis store %s: already provisioned", s.location)
	}
	poolKey := hex.EncodeToString(sum[:])
	val, loaded, err := clients.LoadOrNew(poolKey, func() (caddy.Destructor, error) {
		return newClient(cfg)
	})
	if err != nil {
		return err
	}
	s.client = val.(*client)
	s.poolKey = poolKey
	s.prefix = cfg.prefix
	s.timeout = cfg.Timeout
	s.location = location(cfg, s.prefix)
	if c := s.logger.Check(zapcore.DebugLevel, "opened mfa store"); c != nil {
		c.Write(zap.String("location", s.location), zap.Bool("shared", loaded))
	}
	return nil
}

// resolve turns the module's fields into a config.
func (s *Store) resolve() (config, error) {
	repl := caddy.NewReplacer()
	resolve := func(name, v string) (string, error) {
		out, err := repl.ReplaceOrErr(v, true, true)
		if err != nil {
			return "", fmt.Errorf("redis store: resolving %s: %w", name, err)
		}
		return out, nil
	}
	cfg := config{
		Timeout:      time.Duration(s.Timeout),
		PoolSize:     s.PoolSize,
		WaitReplicas: s.WaitReplicas,
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	switch {
	case cfg.Timeout < 0:
		return config{}, fmt.Errorf("redis store: timeout %v must be positive", cfg.Timeout)
	case s.PoolSize < 0:
		return config{}, fmt.Errorf("redis store: pool_size %d must not be negative", s.PoolSize)
	case s.WaitReplicas < 0:
		return config{}, fmt.Errorf("redis store: wait_replicas %d must not be negative", s.WaitReplicas)
	case s.DB < 0:
		return config{}, fmt.Errorf("redis store: db %d must not be negative", s.DB)
	}

	rawURL, err := resolve("url", s.URL)
	if err != nil {
		return config{}, err
	}
	if s.Sentinel != nil {
		if rawURL != "" {
			return config{}, errors.New("redis store: url and sentinel are exclusive; with sentinel, set username, password, db and ca_file as options")
		}
		if s.Sentinel.MasterName == "" {
			return config{}, errors.New("redis store: sentinel needs a master name")
		}
		if len(s.Sentinel.Addresses) == 0 {
			return config{}, errors.New("redis store: sentinel needs at least one sentinel address")
		}
		if cfg.MasterName, err = resolve("sentinel master name", s.Sentinel.MasterName); err != nil {
			return config{}, err
		}
		for _, a := range s.Sentinel.Addresses {
			a, err := resolve("sentinel address", a)
			if err != nil {
				return config{}, err
			}
			if _, _, err := net.SplitHostPort(a); err != nil {
				return config{}, fmt.Errorf("redis store: sentinel address %q: want host:port", a)
			}
			cfg.Sentinels = append(cfg.Sentinels, a)
		}
	} else {
		if rawURL == "" {
			rawURL = defaultURL
		}
		u, err := parseURL(rawURL)
		if err != nil {
			return config{}, fmt.Errorf("redis store: %w", err)
		}
		cfg.Addr, cfg.TLS = u.addr, u.tls
		cfg.Username, cfg.Password = u.username, u.password
		cfg.DB = u.db
		if u.hasDB && s.DB != 0 && s.DB != u.db {
			return config{}, fmt.Errorf("redis store: db %d differs from database %d in the url", s.DB, u.db)
		}
	}
	if s.DB != 0 {
		cfg.DB = s.DB
	}
	if s.Username != "" {
		if cfg.Username, err = resolve("username", s.Username); err != nil {
			return config{}, err
		}
	}
	if s.Password != "" {
		if cfg.Password, err = resolve("password", s.Password); err != nil {
			return config{}, err
		}
	}
	if s.CAFile != "" {
		if cfg.CAFile, err = resolve("ca_file", s.CAFile); err != nil {
			return config{}, err
		}
		if cfg.CAPEM, err = os.ReadFile(cfg.CAFile); err != nil {
			return config{}, fmt.Errorf("redis store: reading ca_file: %w", err)
		}
		cfg.TLS = true
	}
	cfg.prefix = defaultKeyPrefix
	if s.KeyPrefix != "" {
		if cfg.prefix, err = resolve("key_prefix", s.KeyPrefix); err != nil {
			return config{}, err
		}
		if cfg.prefix == "" {
			return config{}, errors.New("redis store: key_prefix resolved to nothing")
		}
	}
	return cfg, nil
}

// newClient makes a go-redis client for cfg. It does not connect: the
// pool dials on first use.
func newClient(cfg config) (*client, error) {
	var tlsConfig *tls.Config
	if cfg.TLS {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(cfg.CAPEM) {
				return nil, fmt.Errorf("redis store: ca_file %s holds no PEM certificate", cfg.CAFile)
			}
			tlsConfig.RootCAs = pool
		}
	}
	// No retries: a command that may have reached the server is not sent
	// twice (an attempt must not be counted twice), and a failed call
	// makes the caller deny. go-redis checks a pooled connection before
	// reusing it, so a restarted server costs no failed request.
	const maxRetries = -1
	// One dial per call: a server that refuses connections fails the call
	// at once instead of after go-redis' five tries with backoff.
	const dialAttempts = 1
	disabled := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if cfg.MasterName != "" {
		return &client{locks: newKeyLocks(), rdb: goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:            cfg.MasterName,
			SentinelAddrs:         cfg.Sentinels,
			Username:              cfg.Username,
			Password:              cfg.Password,
			DB:                    cfg.DB,
			TLSConfig:             tlsConfig,
			DialTimeout:           cfg.Timeout,
			ReadTimeout:           cfg.Timeout,
			WriteTimeout:          cfg.Timeout,
			PoolTimeout:           cfg.Timeout,
			ContextTimeoutEnabled: true,
			PoolSize:              cfg.PoolSize,
			MaxRetries:            maxRetries,
			DisableIdentity:       true,
		})}, nil
	}
	return &client{locks: newKeyLocks(), rdb: goredis.NewClient(&goredis.Options{
		Addr:                     cfg.Addr,
		Username:                 cfg.Username,
		Password:                 cfg.Password,
		DB:                       cfg.DB,
		TLSConfig:                tlsConfig,
		DialTimeout:              cfg.Timeout,
		DialerRetries:            dialAttempts,
		ReadTimeout:              cfg.Timeout,
		WriteTimeout:             cfg.Timeout,
		PoolTimeout:              cfg.Timeout,
		ContextTimeoutEnabled:    true,
		PoolSize:                 cfg.PoolSize,
		MaxRetries:               maxRetries,
		DisableIdentity:          true,
		MaintNotificationsConfig: disabled,
	})}, nil
}

// location names the server, database and key prefix, without
// credentials: redis://host:port/db?key_prefix=... or
// redis+sentinel://master@s1,s2/db?key_prefix=...
func location(cfg config, prefix string) string {
	scheme, host := "redis", cfg.Addr
	if cfg.MasterName != "" {
		scheme, host = "redis+sentinel", cfg.MasterName+"@"+strings.Join(cfg.Sentinels, ",")
	}
	if cfg.TLS {
		scheme = strings.Replace(scheme, "redis", "rediss", 1)
	}
	return scheme + "://" + host + "/" + strconv.Itoa(cfg.DB) + "?key_prefix=" + url.QueryEscape(prefix)
}

// Location names the server (or the Sentinel master), the database and the
// key prefix; it holds no credentials.
func (s *Store) Location() string { return s.location }

// Cleanup releases this Store's reference to its client; the last
// reference closes the connections. Afterwards every method returns
// storage.ErrClosed. Cleanup is idempotent and safe after a failed
// Provision.
func (s *Store) Cleanup() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		return nil
	}
	s.client = nil
	deleted, err := clients.Delete(s.poolKey)
	if deleted && s.logger != nil {
		if c := s.logger.Check(zapcore.DebugLevel, "closed mfa store"); c != nil {
			c.Write(zap.String("location", s.location))
		}
	}
	return err
}

// routeClientLog sends go-redis' own log lines (a failed dial, a
// reconnect) to Caddy's logger, at debug level, once per process: go-redis
// has one process-wide logger, which otherwise prints plain lines to
// stderr, one per failed call while Redis is down. The store's errors,
// which the handler logs, say the same.
var routeClientLog sync.Once

// clientLogger is go-redis' logger interface on zap.
type clientLogger struct {
	l *zap.Logger
}

func (c clientLogger) Printf(_ context.Context, format string, v ...any) {
	if !c.l.Core().Enabled(zapcore.DebugLevel) {
		return
	}
	if ce := c.l.Check(zapcore.DebugLevel, strings.TrimSpace(fmt.Sprintf(format, v...))); ce != nil {
		ce.Write()
	}
}

// Interface guards
var (
	_ caddy.Module       = (*Store)(nil)
	_ caddy.Provisioner  = (*Store)(nil)
	_ storage.Locator    = (*Store)(nil)
	_ caddy.CleanerUpper = (*Store)(nil)
	_ storage.Store      = (*Store)(nil)
	_ caddy.Destructor   = (*client)(nil)
)
