package caddymfa

// The binary layouts of the records (recordcodec.go). Each readRecord
// reads the fields in the order its appendRecord wrote them; a field added
// to a record's struct goes into both, and TestRecordFieldsRoundTrip fails
// until it does.

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
