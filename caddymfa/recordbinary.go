package caddymfa

// The binary layouts of the records (recordcodec.go). Each readRecord
// reads the fields in the order its appendRecord wrote them; a field added
// to a record's struct goes into both, and TestRecordFieldsRoundTrip fails
// until it does.

import (
	"encoding/binary"
	"time"
)

func (*challenge) recordFormat() byte { return formatChallenge }

func (ch *challenge) appendRecord(b []byte) []byte {
	b = appendString(b, ch.Realm)
	b = appendString(b, ch.User)
	b = appendString(b, ch.Method)
	b = appendString(b, ch.CodeMAC)
	b = appendString(b, ch.LinkMAC)
	b = appendInt(b, int64(ch.Attempts))
	b = appendInt(b, int64(ch.Sends))
	b = appendString(b, ch.Destination)
	b = appendString(b, ch.State)
	b = appendTime(b, ch.IssuedAt)
	b = appendTime(b, ch.ExpiresAt)
	b = appendTime(b, ch.KeepUntil)
	b = appendBool(b, ch.Failed)
	b = appendString(b, ch.Address)
	b = appendBool(b, ch.Unsent)
	b = appendStrings(b, ch.CoolKeys)
	b = appendTime(b, ch.UsedAt)
	b = appendInt(b, int64(ch.Match))
	b = appendBool(b, ch.From != nil)
	if o := ch.From; o != nil {
		b = appendString(b, o.Browser)
		b = appendString(b, o.System)
		b = appendString(b, o.Country)
		b = appendTime(b, o.Time)
	}
	return b
}

func (ch *challenge) readRecord(d *binReader) {
	ch.Realm = d.string()
	ch.User = d.string()
	ch.Method = d.string()
	ch.CodeMAC = d.bytes()
	ch.LinkMAC = d.bytes()
	ch.Attempts = d.int()
	ch.Sends = d.int()
	ch.Destination = d.string()
	ch.State = challengeState(d.string())
	ch.IssuedAt = d.time()
	ch.ExpiresAt = d.time()
	ch.KeepUntil = d.time()
	ch.Failed = d.bool()
	ch.Address = d.string()
	ch.Unsent = d.bool()
	ch.CoolKeys = d.strings()
	ch.UsedAt = d.time()
	ch.Match = d.int()
	if d.bool() {
		ch.From = &linkOrigin{
			Browser: d.string(),
			System:  d.string(),
			Country: d.string(),
			Time:    d.time(),
		}
	}
}

func (*session) recordFormat() byte { return formatSession }

func (s *session) appendRecord(b []byte) []byte {
	b = appendString(b, s.Realm)
	b = appendString(b, s.FirstFactor)
	b = appendString(b, s.User)
	b = appendString(b, s.Method)
	b = appendString(b, s.Host)
	b = appendTime(b, s.Created)
	b = appendTime(b, s.Expires)
	b = appendTime(b, s.LastSeen)
	b = appendString(b, s.UserAgent)
	b = appendString(b, s.IP)
	b = appendString(b, s.Country)
	b = appendString(b, s.Device)
	return appendTimes(b, s.Verified)
}

func (s *session) readRecord(d *binReader) {
	s.Realm = d.string()
	s.FirstFactor = d.string()
	s.User = d.string()
	s.Method = d.string()
	s.Host = d.string()
	s.Created = d.time()
	s.Expires = d.time()
	s.LastSeen = d.time()
	s.UserAgent = d.string()
	s.IP = d.string()
	s.Country = d.string()
	s.Device = d.string()
	s.Verified = d.times()
}

func (*lockRecord) recordFormat() byte { return formatLock }

func (l *lockRecord) appendRecord(b []byte) []byte {
	return appendTime(appendInt(b, int64(l.Fails)), l.LockedUntil)
}

func (l *lockRecord) readRecord(d *binReader) {
	l.Fails = d.int()
	l.LockedUntil = d.time()
}

func (*userRecord) recordFormat() byte { return formatUser }

func (u *userRecord) appendRecord(b []byte) []byte {
	b = appendBool(b, u.TOTP != nil)
	if f := u.TOTP; f != nil {
		b = appendString(b, f.Secret)
		b = appendInt(b, f.LastStep)
		b = appendTime(b, f.Added)
	}
	b = appendStrings(b, u.Recovery)
	b = appendString(b, u.LastMethod)
	b = binary.AppendUvarint(b, uint64(len(u.Known)))
	for _, k := range u.Known {
		b = appendString(b, k.IP)
		b = appendString(b, k.Country)
		b = appendTime(b, k.Seen)
	}
	b = appendString(b, u.Phone)
	b = appendString(b, u.Email)
	b = binary.AppendUvarint(b, uint64(len(u.Passkeys)))
	for i := range u.Passkeys {
		p := &u.Passkeys[i]
		b = appendString(b, p.ID)
		b = appendString(b, p.PublicKey)
		b = binary.AppendUvarint(b, uint64(p.SignCount))
		b = appendString(b, p.AAGUID)
		b = appendStrings(b, p.Transports)
		b = appendBool(b, p.UserVerified)
		b = appendBool(b, p.BackupEligible)
		b = appendBool(b, p.BackupState)
		b = appendString(b, p.AttestationType)
		b = appendString(b, p.AttestationFormat)
		b = appendString(b, p.Name)
		b = appendTime(b, p.Added)
		b = appendTime(b, p.LastUsed)
	}
	b = appendString(b, u.PasskeyHandle)
	return appendString(b, u.Lang)
}

func (u *userRecord) readRecord(d *binReader) {
	if d.bool() {
		u.TOTP = &totpFactor{Secret: d.string(), LastStep: d.varint(), Added: d.time()}
	}
	if n := d.count(); n > 0 {
		u.Recovery = make([][]byte, n)
		for i := range u.Recovery {
			u.Recovery[i] = d.bytes()
		}
	}
	u.LastMethod = d.string()
	if n := d.count(); n > 0 {
		u.Known = make([]knownPlace, n)
		for i := range u.Known {
			u.Known[i] = knownPlace{IP: d.string(), Country: d.string(), Seen: d.time()}
		}
	}
	u.Phone = d.string()
	u.Email = d.string()
	if n := d.count(); n > 0 {
		u.Passkeys = make([]passkeyFactor, n)
		for i := range u.Passkeys {
			p := &u.Passkeys[i]
			p.ID = d.bytes()
			p.PublicKey = d.bytes()
			p.SignCount = d.uint32()
			p.AAGUID = d.bytes()
			p.Transports = d.strings()
			p.UserVerified = d.bool()
			p.BackupEligible = d.bool()
			p.BackupState = d.bool()
			p.AttestationType = d.string()
			p.AttestationFormat = d.string()
			p.Name = d.string()
			p.Added = d.time()
			p.LastUsed = d.time()
		}
	}
	u.PasskeyHandle = d.bytes()
	u.Lang = d.string()
}

func (*logEntry) recordFormat() byte { return formatLogEntry }

func (e *logEntry) appendRecord(b []byte) []byte {
	b = appendInt(b, e.Seq)
	b = appendTime(b, e.Time)
	b = appendString(b, e.ChallengeID)
	b = appendString(b, e.Method)
	b = appendString(b, e.User)
	b = appendString(b, e.To)
	b = appendInt(b, int64(e.Attempt))
	b = appendBool(b, e.OK)
	b = appendBool(b, e.Permanent)
	b = appendString(b, e.Error)
	return appendInt(b, int64(e.Latency))
}

func (e *logEntry) readRecord(d *binReader) {
	e.Seq = d.varint()
	e.Time = d.time()
	e.ChallengeID = d.string()
	e.Method = d.string()
	e.User = d.string()
	e.To = d.string()
	e.Attempt = d.int()
	e.OK = d.bool()
	e.Permanent = d.bool()
	e.Error = d.string()
	e.Latency = time.Duration(d.varint())
}

func (*liveFlow) recordFormat() byte { return formatLiveFlow }

func (l *liveFlow) appendRecord(b []byte) []byte {
	return appendTime(appendInt(appendString(b, l.ID), l.Issued), l.Sent)
}

func (l *liveFlow) readRecord(d *binReader) {
	l.ID = d.string()
	l.Issued = d.varint()
	l.Sent = d.time()
}
